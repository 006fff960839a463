"""Fixtures of the flow tests: the flow's own modules on sys.path, an isolated Metaflow home."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FLOWS_DIR = REPO_ROOT / "flows"
FLOW_FILE = FLOWS_DIR / "sensor_processing_flow.py"

# The flow imports its helpers as top-level modules (`import fallback`), because only the flow's
# folder is packaged for the Argo pods. Appended, not prepended: `processing` must keep resolving
# to the repository's package, not to the `flows/processing` symlink.
if str(FLOWS_DIR) not in sys.path:
    sys.path.append(str(FLOWS_DIR))

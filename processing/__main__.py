"""``python -m processing CHUNK_FILE``: see :mod:`processing.cli`."""

import sys

from processing.cli import main

sys.exit(main())

"""``python -m sensorctl ...``"""

import sys

from sensorctl.cli import main

sys.exit(main())

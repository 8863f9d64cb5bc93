"""`python -m opta_exporter` runs the daemon."""

import sys

from opta_exporter.cli import main

sys.exit(main())

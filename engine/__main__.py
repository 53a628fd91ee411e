"""``python -m engine`` runs the ``modelai`` command."""

import sys

from engine.cli import main

sys.exit(main())

"""``python -m modelai_desktop`` opens the window (the same as the ``modelai-desktop`` command)."""

import sys

from modelai_desktop.app import main

sys.exit(main())

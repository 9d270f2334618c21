"""``python -m voltx``: the same as the ``voltx`` command."""

import sys

from voltx.cli import main

sys.exit(main())

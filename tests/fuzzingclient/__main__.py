"""``PYTHONPATH=tests python -m fuzzingclient --help``."""

import sys

from .run import main

sys.exit(main())

"""``python -m dav2_core``: the command-line interface (see :mod:`dav2_core.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

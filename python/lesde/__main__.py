"""``python -m lesde``: the same command line as the ``lesde`` script (see lesde.cli)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

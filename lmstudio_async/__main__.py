"""``python -m lmstudio_async``: the ``lmstudio-async`` command line."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m lmstudio_async.testing``: the same program as ``lmstudio-async simulate``.

One program, so both spellings take the same options (``--script``, ``--tokens-per-second``,
``--quiet``, ``--no-context-limit``, ``--catalog``...) and log the same lines.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lmstudio-async simulate`` with ``argv`` (default ``sys.argv[1:]``); the exit status."""
    from .._cli import main as cli_main

    return cli_main(["simulate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())

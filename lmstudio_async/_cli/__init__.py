"""The ``lmstudio-async`` command line: ``chat``, ``models``, ``load``, ``unload``, ``simulate``.

Standard library only (argparse, a text progress bar); every command talks to LM Studio through
the public SDK, so the CLI doubles as a smoke test of it. ``main`` is the console-script entry.
"""

from ._app import main

__all__ = ["main"]

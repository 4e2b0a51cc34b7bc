"""Shared by the examples: ``--simulate`` starts the bundled LM Studio simulator in-process.

Without ``--simulate`` an example talks to the LM Studio named by ``LMSTUDIO_BASE_URL``, else to
the local one (found by probing LM Studio's ports).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import lmstudio_async as lms
from lmstudio_async.testing import Simulator


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the examples' shared ``--simulate`` flag."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="run against the bundled LM Studio simulator instead of LM Studio",
    )
    return parser


@contextlib.asynccontextmanager
async def connect(
    simulate: bool, *, prepare: Callable[[Simulator], None] | None = None
) -> AsyncIterator[lms.LMStudioClient]:
    """An open client; with ``simulate``, for a fresh simulator (``prepare`` may script it)."""
    if not simulate:
        async with lms.LMStudioClient() as client:
            yield client
        return
    async with Simulator() as sim:
        if prepare is not None:
            prepare(sim)
        async with lms.LMStudioClient(sim.base_url) as client:
            yield client


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run an example's ``main()``; an SDK error ends it with one line on stderr, exit 1.

    A newcomer without LM Studio running should read what to do, not a traceback.
    """
    try:
        asyncio.run(main)
    except lms.LMStudioError as exc:
        message = " ".join(str(exc).split())
        if isinstance(exc, lms.LMStudioConnectionError):
            message += " (Or run this example against the bundled simulator: --simulate.)"
        sys.exit(f"{Path(sys.argv[0]).name}: {message}")
    except KeyboardInterrupt:
        sys.exit(130)

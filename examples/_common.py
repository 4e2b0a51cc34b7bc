"""Shared by the examples: ``--simulate`` starts the bundled LM Studio simulator in-process.

Without ``--simulate`` an example talks to the LM Studio named by ``LMSTUDIO_BASE_URL``, else to
the local one (found by probing LM Studio's ports).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator, Callable

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

"""Where the CLI's client points: ``--host``, ``--simulate``, ``LMSTUDIO_BASE_URL`` or discovery."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

from .._client import LMStudioClient
from .._discovery import BASE_URL_ENV_VAR
from .._errors import (
    LMStudioAuthenticationError,
    LMStudioConnectionError,
    LMStudioNotFoundError,
)

__all__ = ["add_connection_arguments", "connected_client", "describe_connection_error"]


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """``--host`` and ``--simulate``, shared by every command that talks to LM Studio."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--host",
        metavar="HOST:PORT",
        help=f"LM Studio to use, e.g. localhost:1234 (default: ${BASE_URL_ENV_VAR}, "
        "else probe the local LM Studio ports)",
    )
    where.add_argument(
        "--simulate",
        action="store_true",
        help="start the bundled LM Studio simulator in-process and use it (no LM Studio needed)",
    )


@contextlib.asynccontextmanager
async def connected_client(
    args: argparse.Namespace, *, simulator: Mapping[str, Any] | None = None
) -> AsyncIterator[LMStudioClient]:
    """An open client for the chosen LM Studio; with ``--simulate``, a simulator serves it
    (``simulator``: keyword arguments for it)."""
    if args.simulate:
        # Imported here: the simulator is only needed for --simulate.
        from ..testing import Simulator

        async with Simulator(**(simulator or {})) as sim, LMStudioClient(sim.base_url) as client:
            yield client
    else:
        async with LMStudioClient(args.host) as client:
            yield client


def describe_connection_error(
    error: LMStudioConnectionError, args: argparse.Namespace, prog: str
) -> str:
    """One line: which hosts were tried, and how to get an LM Studio (or the simulator)."""
    fix = (
        "Start LM Studio (or `lms server start`), pass --host HOST:PORT, "
        "or try it without LM Studio: --simulate."
    )
    if isinstance(error, LMStudioNotFoundError) and error.hosts_tried:
        return f"{prog}: no LM Studio answered on {', '.join(error.hosts_tried)}. {fix}"
    if isinstance(error.__cause__, OSError):
        # The socket never opened: nothing listens there (or a firewall says no).
        where = args.host or os.environ.get(BASE_URL_ENV_VAR, "").strip() or "the default host"
        return f"{prog}: no LM Studio answered on {where} ({_one_line(error.__cause__)}). {fix}"
    if isinstance(error, LMStudioAuthenticationError):
        return f"{prog}: {_one_line(error)}"
    return f"{prog}: lost the connection to LM Studio: {_one_line(error)}"


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__

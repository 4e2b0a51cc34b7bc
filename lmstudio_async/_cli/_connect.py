"""Where the CLI's client points: ``--host``, ``--simulate``, ``LMSTUDIO_BASE_URL`` or discovery."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

from .._client import LMStudioClient
from .._discovery import BASE_URL_ENV_VAR, CREDENTIALS_PROBLEM, base_url_problem
from .._errors import LMStudioUsageError
from .._protocol.auth import TOKEN_ENV_VARS, resolve_credentials
from .._timeouts import Timeouts
from ._messages import CommandError
from ._numbers import positive_float
from ._verbose import add_verbose_argument

__all__ = ["add_connection_arguments", "connected_client", "timeouts_from"]


def add_connection_arguments(parser: argparse.ArgumentParser, *, many_hosts: bool = False) -> None:
    """``--host``/``--simulate``, ``--api-token``, ``--timeout`` and ``-v``, for every command
    that talks to LM Studio. With ``many_hosts``, ``--host`` may be repeated (a list, or
    ``None`` when not given)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--host",
        type=_host,
        metavar="HOST:PORT",
        action="append" if many_hosts else "store",
        help=f"LM Studio to use, e.g. localhost:1234 (default: ${BASE_URL_ENV_VAR}, "
        "else probe the local LM Studio ports)"
        + ("; repeat it to spread the work over several hosts" if many_hosts else ""),
    )
    where.add_argument(
        "--simulate",
        action="store_true",
        help="start the bundled LM Studio simulator in-process and use it (no LM Studio needed)",
    )
    parser.add_argument(
        "--api-token",
        type=_api_token,
        metavar="TOKEN",
        help=f"LM Studio API token, sk-lm-... (default: ${TOKEN_ENV_VARS[0]}, else "
        f"${TOKEN_ENV_VARS[1]}; the environment keeps it out of `ps` and shell history)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        metavar="SECONDS",
        help="give up when LM Studio takes longer than this to accept the connection or to "
        "answer a request (default: 10 s to connect, 60 s per request; replies are never "
        "cut short)",
    )
    add_verbose_argument(parser)


_ADDRESS_FORMS = "e.g. localhost:1234, 192.168.1.5:1234 or http://localhost:1234"


def _address_advice(problem: str) -> str:
    if problem == CREDENTIALS_PROBLEM:
        return f"give the token with --api-token (or ${TOKEN_ENV_VARS[0]}) instead"
    return f"use {_ADDRESS_FORMS}"


def _host(text: str) -> str:
    problem = base_url_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{text!r}: {problem}; {_address_advice(problem)}")
    return text


def _checked_environment_address() -> None:
    """Refuse a malformed $LMSTUDIO_BASE_URL in its own name, before the client parses it."""
    value = os.environ.get(BASE_URL_ENV_VAR, "").strip()
    problem = base_url_problem(value) if value else None
    if problem is not None:
        raise CommandError(
            f"${BASE_URL_ENV_VAR} is {value!r}: {problem}. Set it to an address "
            f"({_ADDRESS_FORMS}), or unset it to find the local LM Studio.",
            usage=True,
        )


def _api_token(text: str) -> str:
    try:
        resolve_credentials(text)
    except LMStudioUsageError:
        # Never echo the value: it is a secret, even when mistyped.
        raise argparse.ArgumentTypeError(
            "expected the form sk-lm-<8 letters or digits>:<20 letters or digits>; copy it "
            "again from LM Studio's Developer settings"
        ) from None
    return text


def timeouts_from(args: argparse.Namespace) -> Timeouts | None:
    """The client's deadlines from ``--timeout`` (``None``: the SDK's defaults)."""
    if args.timeout is None:
        return None
    return Timeouts(connect=args.timeout, auth=args.timeout, rpc=args.timeout)


@contextlib.asynccontextmanager
async def connected_client(
    args: argparse.Namespace, *, simulator: Mapping[str, Any] | None = None
) -> AsyncIterator[LMStudioClient]:
    """An open client for the chosen LM Studio; with ``--simulate``, a simulator serves it
    (``simulator``: keyword arguments for it)."""
    timeouts = timeouts_from(args)
    if args.simulate:
        # Imported here: the simulator is only needed for --simulate.
        from ..testing import Simulator

        async with (
            Simulator(**(simulator or {})) as sim,
            LMStudioClient(sim.base_url, api_token=args.api_token, timeouts=timeouts) as client,
        ):
            yield client
    else:
        if args.host is None:
            _checked_environment_address()
        async with LMStudioClient(args.host, api_token=args.api_token, timeouts=timeouts) as client:
            yield client

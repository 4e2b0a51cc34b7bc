"""``lmstudio-async simulate``: serve the bundled LM Studio simulator until Ctrl-C."""

from __future__ import annotations

import argparse
import errno
import sys
from typing import Any

import anyio

from ._interrupts import Interrupts
from ._verbose import add_verbose_argument

__all__ = ["add_simulate_command"]


def add_simulate_command(commands: Any) -> None:
    parser = commands.add_parser(
        "simulate",
        help="run the bundled LM Studio simulator in the foreground",
        description="Serve the LM Studio simulator (lmstudio_async.testing) until Ctrl-C; point "
        "any LM Studio client at the printed address.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=1234, help="port to bind, 0 for any free one (default: 1234)"
    )
    parser.add_argument("--api-token", help="require this sk-lm-... API token from clients")
    add_verbose_argument(parser)
    # Ctrl-C is how a foreground server is meant to stop: exit 0, not 130.
    parser.set_defaults(run=run_simulate, ctrl_c_is_success=True)


async def run_simulate(args: argparse.Namespace, interrupts: Interrupts) -> int:
    from ..testing import Simulator

    try:
        simulator = Simulator(host=args.host, port=args.port, api_token=args.api_token)
    except ValueError as exc:
        print(f"lmstudio-async simulate: {exc}", file=sys.stderr)
        return 2
    try:
        await simulator.start()
    except OSError as exc:
        print(f"lmstudio-async simulate: {_cannot_listen(exc, args)}", file=sys.stderr)
        return 1
    try:
        print(f"LM Studio simulator serving {simulator.base_url} (Ctrl-C to stop)", flush=True)
        print(
            f'  try: lmstudio-async chat --host {simulator.host}:{simulator.port} "Hello"',
            flush=True,
        )
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            await simulator.aclose()
    return 0


def _cannot_listen(exc: OSError, args: argparse.Namespace) -> str:
    where = f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc})."
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"{where} {args.host} is not an address of this machine: pass --host 127.0.0.1 "
            "(this machine only) or --host 0.0.0.0 (every interface)."
        )
    if exc.errno == errno.EADDRINUSE:
        return f"{where} Something else uses that port: pick another --port (0 = any free one)."
    return f"{where} Check --host and --port."

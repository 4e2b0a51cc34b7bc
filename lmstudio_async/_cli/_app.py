"""Argument parsing, running a command in the event loop, and turning errors into exit codes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import anyio

from .._errors import LMStudioConnectionError, LMStudioError
from .._version import __version__
from ._batch import add_batch_command
from ._chat import add_chat_command
from ._connect import describe_connection_error
from ._interrupts import EXIT_INTERRUPTED, Interrupts
from ._models import add_model_commands
from ._simulate import add_simulate_command

__all__ = ["build_parser", "main"]

PROG = "lmstudio-async"
EXIT_ERROR = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Talk to LM Studio from the terminal (asyncio SDK: lmstudio_async). "
        'Try it without LM Studio: lmstudio-async chat --simulate "Hello"',
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    add_chat_command(commands)
    add_model_commands(commands)
    add_simulate_command(commands)
    add_batch_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        # Only reachable where SIGINT could not be routed into the loop (see Interrupts).
        return 0 if getattr(args, "ctrl_c_is_success", False) else EXIT_INTERRUPTED


async def _run(args: argparse.Namespace) -> int:
    code = EXIT_ERROR
    with anyio.CancelScope() as scope:
        interrupts = Interrupts(scope)
        with interrupts.installed():
            try:
                code = await args.run(args, interrupts)
            except Exception as exc:
                error = _sdk_error(exc)
                if error is None:
                    raise
                if isinstance(error, LMStudioConnectionError):
                    print(describe_connection_error(error, args, PROG), file=sys.stderr)
                else:
                    print(f"{PROG}: {_one_line(error)}", file=sys.stderr)
                return EXIT_ERROR
    if interrupts.interrupted:
        return 0 if getattr(args, "ctrl_c_is_success", False) else EXIT_INTERRUPTED
    return code if not scope.cancel_called else EXIT_INTERRUPTED


def _sdk_error(exc: BaseException) -> LMStudioError | None:
    """The SDK error behind ``exc``, also when a task group wrapped it in an exception group."""
    # An error raised inside a task group can arrive wrapped in an exception group; a group
    # holding one error is that error as far as the user is concerned.
    while isinstance(getattr(exc, "exceptions", None), tuple) and len(exc.exceptions) == 1:  # type: ignore[attr-defined]
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    return exc if isinstance(exc, LMStudioError) else None


def _one_line(error: BaseException) -> str:
    # Server errors carry "Cause:"/"Suggestion:" lines; a CLI error is one line.
    return " ".join(part.strip() for part in str(error).splitlines() if part.strip())

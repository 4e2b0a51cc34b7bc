"""Argument parsing, running a command in the event loop, and turning errors into exit codes.

Exit codes: 0 success, 1 an error (one line on stderr), 2 a usage error, 130 Ctrl-C, 141 the
reader of stdout went away (``lmstudio-async chat ... | head``), as shells report for ``git``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import io
import os
import sys
import traceback
from collections.abc import Sequence
from typing import TypeVar

import anyio

from .._errors import LMStudioError
from .._version import __version__
from ._batch import add_batch_command
from ._chat import add_chat_command
from ._get import add_get_command
from ._interrupts import EXIT_INTERRUPTED, Interrupts
from ._messages import PROG, CommandError, describe_error, one_line
from ._models import add_model_commands
from ._simulate import add_simulate_command
from ._text import InputText
from ._verbose import add_verbose_argument, configure_logging

__all__ = ["build_parser", "main"]

E = TypeVar("E", bound=BaseException)

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for `git log | head`


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Talk to LM Studio from the terminal (asyncio SDK: lmstudio_async). "
        'Try it without LM Studio: lmstudio-async chat --simulate "Hello"',
        epilog="Exit status: 0 done, 1 error, 2 wrong usage, 130 Ctrl-C, 141 the reader of "
        "the output went away (e.g. `| head`).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_verbose_argument(parser)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    add_chat_command(commands)
    add_model_commands(commands)
    add_get_command(commands)
    add_simulate_command(commands)
    add_batch_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    This is the one edge where every failure becomes a line on stderr and an exit status:
    no command has to remember it, and no input, address or full disk reaches the user as a
    Python traceback (``-v`` shows the traceback of an unexpected one).
    """
    _tolerate_any_text()
    # Every command gets its arguments (and, via args.text, its stdin lines) decoded the same
    # way: bytes that are not UTF-8 are replaced once, here, before any command sees them.
    text = InputText()
    args = build_parser().parse_args([text(a) for a in (sys.argv[1:] if argv is None else argv)])
    args.text = text
    verbose = getattr(args, "verbose", False)
    configure_logging(verbose)
    try:
        code = asyncio.run(_run(args))
        # A redirected stdout is block-buffered: its last write happens here, not in print().
        sys.stdout.flush()
    except KeyboardInterrupt:
        # Only reachable where SIGINT could not be routed into the loop (see Interrupts).
        return 0 if getattr(args, "ctrl_c_is_success", False) else EXIT_INTERRUPTED
    except BrokenPipeError:
        # The pipe broke while asyncio shut down (a late flush): same quiet exit.
        _silence_closed_output()
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        return _report_unexpected(exc, verbose)
    return code


async def _run(args: argparse.Namespace) -> int:
    code = EXIT_ERROR
    with anyio.CancelScope() as scope:
        interrupts = Interrupts(scope)
        with interrupts.installed():
            try:
                code = await args.run(args, interrupts)
            except Exception as exc:
                if _contains(exc, BrokenPipeError):
                    _silence_closed_output()
                    return EXIT_BROKEN_PIPE
                command_error = _single(exc, CommandError)
                if command_error is not None:
                    print(f"{PROG}: {command_error}", file=sys.stderr)
                    return EXIT_USAGE if command_error.usage else EXIT_ERROR
                error = _single(exc, LMStudioError)
                if error is None:
                    raise
                print(describe_error(error, args), file=sys.stderr)
                return EXIT_ERROR
    if interrupts.interrupted:
        return 0 if getattr(args, "ctrl_c_is_success", False) else EXIT_INTERRUPTED
    return code if not scope.cancel_called else EXIT_INTERRUPTED


def _report_unexpected(exc: BaseException, verbose: bool) -> int:
    """One line for an error no command turned into one; the traceback only with ``-v``."""
    os_error = _single(exc, OSError)
    if os_error is not None:
        # E.g. stdout is a full disk (ENOSPC) or a closed terminal (EIO): nothing more can be
        # written there, and Python's exit-time flush would fail again with a traceback.
        print(f"{PROG}: {_os_error_line(os_error)}", file=sys.stderr, flush=True)
        _silence_stdout()
        return EXIT_ERROR
    if verbose:
        traceback.print_exception(exc)
    inner = _single(exc, BaseException) or exc
    print(
        f"{PROG}: unexpected error: {type(inner).__name__}: {one_line(inner)} This is a bug "
        f"in {PROG}; please report it with the output of the same command run with -v.",
        file=sys.stderr,
        flush=True,
    )
    return EXIT_ERROR


def _os_error_line(error: OSError) -> str:
    reason = error.strerror or one_line(error)
    if error.filename is not None:
        return f"{error.filename}: {reason}."
    if error.errno in _OUTPUT_ERRNOS:
        return f"cannot write the output: {reason}."
    return f"{reason}."


# Errors that writing to stdout raises when its file cannot take more (disk, terminal, device).
_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EIO, errno.EFBIG, errno.EDQUOT, errno.EBADF})


def _single(exc: BaseException, kind: type[E]) -> E | None:
    """``exc`` if it is a ``kind``, also when a task group wrapped it in an exception group."""
    # A group holding one error is that error as far as the user is concerned.
    while isinstance(getattr(exc, "exceptions", None), tuple) and len(exc.exceptions) == 1:  # type: ignore[attr-defined]
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    return exc if isinstance(exc, kind) else None


def _contains(exc: BaseException, kind: type[BaseException]) -> bool:
    """True if ``exc`` is a ``kind`` or an exception group holds one at any depth."""
    if isinstance(exc, kind):
        return True
    inner = getattr(exc, "exceptions", None)
    return isinstance(inner, tuple) and any(_contains(e, kind) for e in inner)


def _silence_stdout() -> None:
    # The buffered text that could not be written would be flushed again at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):
        os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _silence_closed_output() -> None:
    # Python flushes stdout (and may write to stderr) on exit; both can be the closed pipe
    # (`2>&1 | head`). Pointing them at /dev/null makes that flush a no-op instead of a
    # second BrokenPipeError printed as "Exception ignored ...".
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, stream.fileno())
    os.close(devnull)


def _tolerate_any_text() -> None:
    """Never die on text the terminal's encoding can't show or bytes that aren't UTF-8."""
    # Reading keeps undecodable bytes as surrogates (the chat command replaces them and says
    # so); writing replaces what the output encoding cannot represent. A stream a caller
    # replaced (a StringIO, None under pythonw) is left alone.
    for stream, errors in (
        (sys.stdin, "surrogateescape"),
        (sys.stdout, "replace"),
        (sys.stderr, "backslashreplace"),
    ):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors=errors)

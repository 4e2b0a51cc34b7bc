"""Error lines for shell users: flags and environment variables, never Python advice.

The SDK's messages speak to Python callers (``api_token=``, ``Timeouts.connect``,
``client.embedding.model(...)``); this module says the same facts in the CLI's own terms, on one
line, once.
"""

from __future__ import annotations

import argparse
import os

from .._discovery import BASE_URL_ENV_VAR
from .._errors import (
    LMStudioAuthenticationError,
    LMStudioClientClosedError,
    LMStudioConnectionError,
    LMStudioError,
    LMStudioModelNotFoundError,
    LMStudioNotFoundError,
    LMStudioTimeoutError,
)
from .._protocol.auth import TOKEN_ENV_VARS

__all__ = ["PROG", "CommandError", "describe_error", "one_line"]

PROG = "lmstudio-async"

_GET_ONE = (
    "Start LM Studio (or `lms server start`), pass --host HOST:PORT, "
    "or try it without LM Studio: --simulate."
)


class CommandError(Exception):
    """A command refused its input or found nothing to do; the message is the whole story.

    ``usage`` errors (an empty message, say) exit with status 2 like argparse's own.
    """

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


def describe_error(error: LMStudioError, args: argparse.Namespace) -> str:
    """``error`` as one line for the shell, starting with the program name."""
    return f"{PROG}: {_describe(error, args)}"


def _describe(error: LMStudioError, args: argparse.Namespace) -> str:
    where = _where(args)
    if isinstance(error, LMStudioNotFoundError) and error.hosts_tried:
        return f"no LM Studio answered on {', '.join(error.hosts_tried)}. {_GET_ONE}"
    if isinstance(error, LMStudioAuthenticationError):
        if getattr(args, "api_token", None) or any(os.environ.get(v) for v in TOKEN_ENV_VARS):
            return (
                f"LM Studio at {where} refused the API token. Check --api-token (or "
                f"${TOKEN_ENV_VARS[0]}); LM Studio's Developer page lists the valid tokens."
            )
        return (
            f"LM Studio at {where} requires an API token. Pass --api-token sk-lm-... or set "
            f"${TOKEN_ENV_VARS[0]}."
        )
    if isinstance(error, LMStudioTimeoutError):
        timeout = getattr(args, "timeout", None)
        within = f"within {timeout:g} s" if timeout is not None else "in time"
        return (
            f"LM Studio at {where} did not answer {within}. Check that it is running there, "
            "or allow longer with --timeout SECONDS."
        )
    if isinstance(error, LMStudioClientClosedError):
        return one_line(error)
    if isinstance(error, LMStudioConnectionError):
        cause = error.__cause__
        status = getattr(cause, "status", None)
        if isinstance(status, int):
            # Something listens there, but it is a web server, not LM Studio's websocket.
            return (
                f"{where} answered with HTTP {status} instead of LM Studio's websocket: "
                f"is that LM Studio's address? {_GET_ONE}"
            )
        if isinstance(cause, OSError):
            # The socket never opened: nothing listens there (or a firewall says no).
            return f"no LM Studio answered on {where} ({_os_reason(cause)}). {_GET_ONE}"
        return (
            f"the connection to LM Studio at {where} ended before the command finished. "
            "Is LM Studio still running? (-v shows what happened.)"
        )
    if isinstance(error, LMStudioModelNotFoundError):
        return f"{one_line(error)} `{PROG} models` lists the downloaded models."
    return one_line(error)


def _os_reason(error: OSError) -> str:
    """The operating system's words for ``error`` ("Connection refused"), not aiohttp's text
    around them ("Cannot connect to host ... ssl:default [Connect call failed ...]")."""
    if error.errno is not None and error.errno > 0:
        return os.strerror(error.errno)
    # Name resolution failures carry the resolver's negative code, and its message.
    inner = getattr(error, "os_error", None)
    if isinstance(inner, OSError) and inner.strerror:
        return inner.strerror
    return error.strerror or type(error).__name__


def _where(args: argparse.Namespace) -> str:
    if getattr(args, "simulate", False):
        return "the simulator"
    host: str | None = getattr(args, "host", None)
    return host or os.environ.get(BASE_URL_ENV_VAR, "").strip() or "the default host"


def one_line(error: BaseException) -> str:
    """``error``'s message on one line, its lines joined as sentences.

    Server errors carry title, "Cause:", "Suggestion:" and "Available:" lines.
    """
    parts = [" ".join(line.split()) for line in str(error).splitlines()]
    sentences = [p if p.endswith((".", "!", "?", ":")) else f"{p}." for p in parts if p]
    return " ".join(sentences) or type(error).__name__

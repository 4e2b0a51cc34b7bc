"""Handing work to the event loop that owns it, from wherever a finalizer happens to run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

__all__ = ["call_in_loop"]


def call_in_loop(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any) -> None:
    """Run ``callback(*args)`` in ``loop``: now when called from that loop, else scheduled
    thread-safely (a finalizer may run on another thread, or after the loop stopped).

    A closed loop means its sockets, and the server-side work with them, are gone already:
    nothing is left to do, so nothing is run.
    """
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        callback(*args)
        return
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)

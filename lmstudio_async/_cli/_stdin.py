"""Reading one line of stdin without blocking the event loop or the program's exit."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading

__all__ = ["read_line"]


async def read_line() -> str:
    """The next line of stdin (``""`` at EOF), read in a daemon thread.

    A blocked ``readline()`` cannot be interrupted. In a worker thread of a pool (anyio's,
    asyncio's default executor) it would keep the interpreter from exiting after Ctrl-C until
    the user pressed Enter; a daemon thread is simply left behind. One thread per line, so
    nothing past the current line is consumed.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def deliver(line: str | None, error: BaseException | None) -> None:
        if future.done():  # the caller was cancelled meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(line or "")

    def read() -> None:
        line: str | None = None
        error: BaseException | None = None
        try:
            line = sys.stdin.readline()
        except Exception as exc:
            error = exc
        # The loop may be closed by now (Ctrl-C ended the command): nobody waits any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(deliver, line, error)

    threading.Thread(target=read, name="lmstudio-async stdin", daemon=True).start()
    return await future

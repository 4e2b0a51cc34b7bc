"""The ``async for`` view of a prediction handle.

Who iterates is decided structurally: the handle hands out one unfinished iterator at a time
(by serial number), never by which task is running it. An iterator dropped unfinished is a
``break``, unless the handle is iterated again before the event loop runs (peeking); its
finalizer only hands that over to the client's loop, thread-safely.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from ..types.prediction import PredictionFragment

if TYPE_CHECKING:
    from ._stream import PredictionStream

__all__ = ["FragmentIterator"]


class FragmentIterator:
    """The ``async for`` view of a prediction; dropped unfinished, it stops the prediction."""

    __slots__ = ("_loop", "_serial", "_stream")

    def __init__(self, stream: PredictionStream[Any], serial: int) -> None:
        self._stream = stream
        # 0 once this iterator is finished (ended, failed or superseded).
        self._serial = serial
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    def __aiter__(self) -> FragmentIterator:
        return self

    def _finish(self) -> None:
        stream = self._stream
        if self._serial and stream._iterator_serial == self._serial:
            stream._iterator_serial = 0
            stream._backlog = None
        self._serial = 0

    async def __anext__(self) -> PredictionFragment:
        stream = self._stream
        if not self._serial or stream._iterator_serial != self._serial:
            raise StopAsyncIteration
        while True:
            backlog = stream._backlog
            if backlog:
                return backlog.popleft()
            fragment = stream._take_buffered()
            if fragment is not None:
                return fragment
            if stream._consuming:
                # result() in another task is reading: its fragments come to our backlog.
                await stream._next_step()
                continue
            waiter = stream._idle_waiter()
            if waiter is None:
                break
            # Waiting right here, on the channel's future, keeps a waiting prediction to one
            # coroutine frame: thousands may be waiting at once.
            stream._consuming = True
            try:
                await waiter
            except BaseException as exc:
                stream._abandon_on(exc)
                self._finish()
                raise
            finally:
                stream._consuming = False
                if stream._done_waiters:
                    stream._wake_waiters()
        try:
            fragment = await stream._next_fragment()
        except BaseException:
            self._finish()
            raise
        if fragment is None:
            self._finish()
            raise StopAsyncIteration
        return fragment

    def __del__(self) -> None:
        serial = self._serial
        if not serial or self._stream._iterator_serial != serial:
            return  # the common case: the loop ran to its end
        loop = self._loop
        if loop is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._stream._iterator_released(serial)
            return
        # Collected on another thread (a cycle collection there) or after the loop: hand the
        # decision to the client's loop; a closed loop means the socket is gone already.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._stream._iterator_released, serial)

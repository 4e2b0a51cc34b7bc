"""The ``async for`` view of a prediction handle.

Who iterates is decided structurally: the handle hands out one unfinished iterator at a time
(by serial number), never by which task is running it. Whether dropping an unfinished iterator
is a ``break`` is decided structurally too, when it is created: only the iterator that an
``async for`` statement creates from the handle stops the prediction; one created explicitly
(``aiter(prediction)``, peeking) never does, whatever runs in between. The finalizer only hands
that over to the client's loop, thread-safely.
"""

from __future__ import annotations

import asyncio
import dis
import sys
from typing import TYPE_CHECKING, Any, Final

from .._loops import call_in_loop
from ..types.prediction import PredictionFragment

if TYPE_CHECKING:
    from ._stream import PredictionStream

__all__ = ["FragmentIterator", "created_by_async_for"]

_GET_AITER: Final = dis.opmap["GET_AITER"]


def created_by_async_for() -> bool:
    """Whether the ``__aiter__`` calling this runs for an ``async for`` statement.

    Python gives an iterator no signal that its loop ended with ``break``; the only thing that
    tells a loop's iterator from an explicit ``aiter()`` is the instruction its caller is
    executing: ``GET_AITER`` (same opcode from 3.10 to 3.13) rather than a call. Where that
    cannot be read (another interpreter) the answer is "explicit", the choice that never stops
    a prediction someone may still read.
    """
    try:
        frame = sys._getframe(2)  # 0: here, 1: __aiter__, 2: whoever asked for the iterator
        return frame.f_code.co_code[frame.f_lasti] == _GET_AITER
    except (AttributeError, IndexError, ValueError):
        return False


class FragmentIterator:
    """The ``async for`` view of a prediction. Dropped unfinished, it stops the prediction if an
    ``async for`` statement created it (a ``break``); an explicit ``aiter()`` one (peeking) only
    frees the handle for the next loop."""

    __slots__ = ("_loop", "_serial", "_stops", "_stream")

    def __init__(self, stream: PredictionStream[Any], serial: int, *, stops: bool) -> None:
        self._stream = stream
        self._stops = stops
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
        # Collected on another thread (a cycle collection there) or after the loop: the
        # decision is the client's loop's to make.
        if self._loop is not None:
            call_in_loop(self._loop, self._stream._iterator_released, serial, self._stops)

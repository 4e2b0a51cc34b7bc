from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import anyio
import msgspec

from .._errors import (
    LMStudioCancelledError,
    LMStudioConnectionError,
    LMStudioError,
    LMStudioProtocolError,
    LMStudioRequestRejectedError,
    LMStudioStructuredOutputError,
    LMStudioTimeoutError,
    LMStudioUsageError,
    server_error_from_payload,
)
from .._mux import Channel, ChannelClosed
from .._mux._channel import Packet
from .._protocol._mending import has_surrogates, mend_text
from .._protocol.packets import (
    PREDICT_TYPES,
    FragmentPacket,
    PredictSuccess,
    PromptProcessingProgress,
    ToolCallGenerationArgumentFragment,
    ToolCallGenerationEnd,
    ToolCallGenerationFailed,
    ToolCallGenerationNameReceived,
    ToolCallGenerationStart,
    decode_packet,
    predict_packets,
)
from ..types.prediction import PredictionFragment, PredictionResult, PromptProcessingDetails
from ._accumulator import PredictionAccumulator
from ._callbacks import PredictionCallbacks, invoke
from ._iterator import FragmentIterator, created_by_async_for
from ._sse import server_sent_events as _server_sent_events

if TYPE_CHECKING:
    from .._telemetry import PredictionObserver
    from ._structured import ResponseFormat

__all__ = ["PredictionStream"]

ChannelOpener = Callable[[], Awaitable[Channel]]
# Opens a prediction channel for (endpoint, creation parameter as msgspec.Raw).
ChannelResender = Callable[[str, msgspec.Raw], Awaitable[Channel]]
# How often one prediction is sent again after its socket withdrew it unanswered (a socket
# retires after five warnings; a fresh one would need five more to withdraw it again).
_MAX_RESENDS = 3
T = TypeVar("T")

_NOT_STARTED: Final = "not started"
_RUNNING: Final = "running"
_DONE: Final = "done"
_FAILED: Final = "failed"


class PredictionStream(Generic[T]):
    """A running (or about-to-run) prediction: iterate it for fragments, await it for the result.

    ``T`` is the type of ``result.parsed``: ``str`` for plain predictions, the
    ``response_format`` type for structured ones.

    Nothing starts until the handle is first iterated, awaited or entered, and however many
    tasks do that at once, one handle runs at most one prediction in LM Studio. Leaving it
    unfinished in any way (``break``, task cancellation, a timeout, leaving ``async with``,
    dropping it) sends ``cancel`` to LM Studio and releases the channel.

    The handle is awaitable, not a coroutine: run a prediction as a task with
    ``asyncio.create_task(prediction.result())``.

    Consumers: one ``async for`` at a time (a second one while the first is unfinished raises
    :class:`LMStudioUsageError`); any number of tasks may ``await`` the result meanwhile, and
    none of them waits on another task: whoever waits reads the stream, and fragments read by
    ``result()`` are kept for the running ``async for``, which still sees every fragment.
    Peeking never stops the prediction: after ``first = await anext(aiter(prediction))``
    (also inside ``asyncio.wait_for`` or a task of its own), an ``async for``, ``await
    prediction`` or anything else awaited in between continues with the second fragment. The
    rule is structural, not timed: an iterator that an ``async for`` statement creates from the
    handle stops the prediction when it is left unfinished (``break``, ``return``, an exception
    out of the loop body); an iterator created explicitly with ``aiter(prediction)`` never does,
    dropped or not; the prediction it was reading stops when the handle itself is dropped, its
    ``async with`` ends, or on :meth:`cancel`. (``async for`` over such an explicit iterator
    follows the explicit rule.)
    """

    # Thousands of predictions may be in flight at once: keep each one small.
    __slots__ = (
        "__weakref__",
        "_accumulator",
        "_backlog",
        "_bounded",
        "_callbacks",
        "_cancel_requested",
        "_carry",
        "_channel",
        "_consuming",
        "_deadline",
        "_description",
        "_done_waiters",
        "_error",
        "_fallback",
        "_iterator_serial",
        "_iterators_opened",
        "_open_channel",
        "_open_scope",
        "_opening",
        "_parse_error",
        "_pending",
        "_progress_seen",
        "_quiet",
        "_resend",
        "_resends",
        "_response_format",
        "_result",
        "_result_waiters",
        "_started_at",
        "_state",
        "_telemetry",
        "_timeout",
        "_tool_call_index",
    )

    def __init__(
        self,
        *,
        open_channel: ChannelOpener,
        callbacks: PredictionCallbacks,
        fallback: ChannelOpener | None = None,
        resend: ChannelResender | None = None,
        description: str = "prediction",
        response_format: ResponseFormat[T] | None = None,
        timeout: float | None = None,
        telemetry: PredictionObserver | None = None,
    ) -> None:
        self._telemetry = telemetry  # None unless telemetry is on (lmstudio_async._telemetry)
        self._open_channel: ChannelOpener | None = open_channel
        # While the prediction waits for a connection or a concurrency slot: cancel() ends
        # the wait, so a prediction cancelled before it was sent is never sent.
        self._open_scope: anyio.CancelScope | None = None
        # Deadlines: the caller's whole-prediction ``timeout`` and the client's phase limits.
        # ``_bounded`` is false when none applies, so the hot path then waits with no timer.
        self._timeout = timeout
        self._deadline: float | None = None
        self._started_at = 0.0
        self._bounded = timeout is not None
        self._fallback = fallback
        self._resend = resend
        self._resends = 0
        self._callbacks = callbacks
        # Without fragment or progress callbacks a plain fragment needs no awaiting at all.
        self._quiet = (
            callbacks.on_first_token is None
            and callbacks.on_prediction_fragment is None
            and callbacks.on_prompt_processing_progress is None
            and telemetry is None  # telemetry times the first fragment (the slow path's `first`)
        )
        # A packet the synchronous fast path took from the channel but left to the slow path.
        self._pending: Packet | None = None
        self._description = description
        self._state = _NOT_STARTED
        self._channel: Channel | None = None
        self._accumulator = PredictionAccumulator()
        self._response_format = response_format
        self._result: PredictionResult[T] | None = None
        self._parse_error: LMStudioStructuredOutputError | None = None
        self._error: BaseException | None = None
        self._cancel_requested = False
        # True while one consumer reads the channel (others wait for it to hand over), and
        # while one opens it (so concurrent first consumers start one prediction, not two).
        self._consuming = False
        self._opening = False
        # The unfinished ``async for`` iterator, by serial number (0: none). Ownership is
        # structural: it is decided by which iterator was opened, never by which task runs it.
        self._iterator_serial = 0
        self._iterators_opened = 0
        # Fragments ``result()`` read while an ``async for`` was unfinished: delivered to it next.
        self._backlog: deque[PredictionFragment] | None = None
        self._done_waiters: list[asyncio.Future[None]] | None = None
        # Tasks inside result(): one of them cancelled leaves the prediction to the others.
        self._result_waiters = 0
        self._progress_seen = 0.0
        self._tool_call_index = -1
        # The first half of a surrogate pair that ended a fragment; the next fragment should
        # begin with the second half (see _protocol/_mending.py).
        self._carry = ""

    def __repr__(self) -> str:
        return (
            f"<PredictionStream {self._description} {self._state} "
            f"fragments={self._accumulator.fragment_count}>"
        )

    def __del__(self) -> None:
        # Dropped while LM Studio is still generating: cancel it and stop buffering.
        if self._state == _RUNNING and self._channel is not None:
            self._channel.abandon_threadsafe()

    # -- public API ---------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[PredictionFragment]:
        if self._iterator_serial:
            raise LMStudioUsageError(
                f"This {self._description} is already being iterated by an unfinished `async "
                "for` (or `aiter()`); a prediction is iterated by one loop at a time. Other "
                "tasks may `await prediction.result()` meanwhile."
            )
        self._iterators_opened += 1
        self._iterator_serial = self._iterators_opened
        # Decided here, once: only the `async for` statement's own iterator means `break`.
        return FragmentIterator(self, self._iterators_opened, stops=created_by_async_for())

    def __await__(self) -> Generator[Any, None, PredictionResult[T]]:
        return self.result().__await__()

    async def __aenter__(self) -> PredictionStream[T]:
        await self._ensure_started()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state in (_NOT_STARTED, _RUNNING):
            self._fail(
                LMStudioCancelledError(
                    f"The {self._description} was cancelled when its `async with` block ended."
                )
            )

    def server_sent_events(self) -> AsyncGenerator[str, None]:
        """This prediction as Server-Sent Events for a browser's ``EventSource``: answer
        fragments as ``data:`` events, ``reasoning`` events, then a ``done`` event with the
        stats (or an ``error`` event); closing it early cancels the prediction. Each item is
        one complete event (``str``) for a streaming response."""
        return _server_sent_events(self)

    @property
    def done(self) -> bool:
        """True once the result (or an error) is known."""
        return self._state in (_DONE, _FAILED)

    @property
    def content(self) -> str:
        """The text received so far (``str``, all fragments including reasoning).

        Cheap to read after every fragment: only the pieces that arrived since the last read
        are added (amortised O(1) per character in CPython), provided the previous string is
        not kept elsewhere — keeping it forces the next read to copy the text once.
        """
        return self._accumulator.content

    async def result(self) -> PredictionResult[T]:
        """The final result; consumes what is left of the stream (no waiting after iteration).

        Never waits on another task: if another consumer is reading the stream right now, this
        waits for its next step and then reads on itself. Fragments it reads while an ``async
        for`` is unfinished are kept for that loop. After a ``break`` the result is the partial
        one, with stop reason ``userStopped``.

        With a ``response_format``, raises :class:`LMStudioStructuredOutputError` when the
        reply does not parse as that format (iteration itself ends normally).

        Cancelling one waiter (e.g. ``asyncio.wait_for`` timing out) stops the prediction only
        if nobody else waits for it or iterates it: otherwise another waiter reads on (also
        when the cancelled one was still opening the channel or queued for a
        ``max_concurrent_predictions`` slot).
        """
        self._result_waiters += 1
        try:
            while True:
                if self._parse_error is not None:
                    raise self._parse_error
                if self._result is not None:
                    return self._result
                if self._error is not None:
                    raise self._error
                if self._consuming:
                    # Another consumer is reading: wait for its step, then read on ourselves.
                    try:
                        await self._next_step()
                    except BaseException as exc:
                        self._abandon_on(exc, for_result=True)
                        raise
                    continue
                fragment = await self._next_fragment(for_result=True)
                if fragment is not None and self._iterator_serial:
                    if self._backlog is None:
                        self._backlog = deque()
                    self._backlog.append(fragment)
        finally:
            self._result_waiters -= 1

    async def cancel(self) -> None:
        """Ask LM Studio to stop. Iteration then ends normally; the result has stop reason
        ``userStopped`` and the partial content. Sent once, and never after the server finished.

        Bounded: if LM Studio does not confirm the cancel within 10 s, the channel and its
        ``max_concurrent_predictions`` slot are released and iteration or :meth:`result` raise
        :class:`LMStudioTimeoutError`; :attr:`content` keeps what arrived.

        Cancelled before it started, or while still waiting for a connection or a
        ``max_concurrent_predictions`` slot, the prediction is never sent: iteration and
        :meth:`result` raise :class:`LMStudioCancelledError`.
        """
        self._cancel_requested = True
        if self._open_scope is not None:
            self._open_scope.cancel()
        if self._channel is not None and self._state == _RUNNING:
            self._channel.cancel()

    # -- driving the channel --------------------------------------------------------------------

    async def _ensure_started(self) -> Channel:
        while self._opening:
            # Another consumer is opening the channel: one handle, one server prediction.
            await self._next_step()
        if self._channel is not None:
            return self._channel
        if self._error is not None:
            raise self._error
        if self._telemetry is not None:
            self._telemetry.started()
        self._opening = True
        channel: Channel | None = None
        try:
            with anyio.CancelScope() as self._open_scope:
                if self._cancel_requested:  # cancelled before anything started
                    self._open_scope.cancel()
                channel = await self._open()
        finally:
            self._open_scope = None
            self._opening = False
            self._wake_waiters()
        if channel is None:
            error = LMStudioCancelledError(
                f"The {self._description} was cancelled before it was sent (it was waiting for "
                "a connection or a max_concurrent_predictions slot); LM Studio never saw it."
            )
            self._fail(error)
            raise error
        # The creation parameter (the whole chat) is not needed once the channel is open.
        self._open_channel = None
        self._attach(channel)
        return channel

    async def _open(self) -> Channel:
        opener = self._open_channel
        assert opener is not None
        return await self._open_with(opener)

    async def _open_with(self, opener: ChannelOpener) -> Channel:
        if self._timeout is None:
            return await opener()
        if self._deadline is None:
            self._deadline = anyio.current_time() + self._timeout
        opened: Channel | None = None
        # Connecting and queueing for a max_concurrent_predictions slot count too.
        with anyio.move_on_after(self._deadline - anyio.current_time()):
            opened = await opener()
        if opened is None:
            raise self._timed_out(f"timeout={self._timeout:g} s")
        return opened

    def _next_step(self) -> asyncio.Future[None]:
        """A future completed when the current reader or opener steps back (or at the end)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._done_waiters is None:
            self._done_waiters = []
        self._done_waiters.append(waiter)
        return waiter

    def _timed_out(self, limit: str) -> LMStudioTimeoutError:
        return LMStudioTimeoutError(
            f"The {self._description} exceeded its deadline ({limit}) after "
            f"{self._accumulator.fragment_count} fragments; it was cancelled in LM Studio."
        )

    async def _next_within(self, channel: Channel) -> Packet:
        """Wait for the next packet under whichever deadline ends first."""
        timeouts = channel.timeouts
        now = anyio.current_time()
        if self._accumulator.fragment_count == 0:
            phase = timeouts.first_fragment
            limit = None if phase is None else self._started_at + phase
            label = f"Timeouts.first_fragment={phase:g} s" if phase is not None else ""
        else:
            phase = timeouts.between_fragments
            limit = None if phase is None else now + phase
            label = f"Timeouts.between_fragments={phase:g} s" if phase is not None else ""
        if self._deadline is not None and (limit is None or self._deadline < limit):
            limit, label = self._deadline, f"timeout={self._timeout:g} s"
        if limit is None:
            return await channel.next()
        with anyio.move_on_after(limit - now):
            return await channel.next()
        raise self._timed_out(label)

    def _attach(self, channel: Channel) -> None:
        self._channel = channel
        self._state = _RUNNING
        self._started_at = anyio.current_time()
        timeouts = channel.timeouts
        if timeouts.first_fragment is not None or timeouts.between_fragments is not None:
            self._bounded = True
        if self._cancel_requested:
            channel.cancel()

    async def _next_fragment(self, *, for_result: bool = False) -> PredictionFragment | None:
        """Process packets until the next fragment (returned) or the end (``None``).

        ``for_result``: the caller is :meth:`result` (else the ``async for`` iterator).
        """
        if self._state in (_DONE, _FAILED):
            if self._error is not None:
                raise self._error
            return None
        # Callers wait for the current reader first; reading concurrently would split packets.
        assert not self._consuming, "two consumers read one prediction at once"
        self._consuming = True
        # True only while waiting with nothing taken: cancelled there, another consumer can
        # take over without a packet or a half-run callback being lost.
        idle = True
        try:
            channel = self._channel or await self._ensure_started()
            idle = False
            accumulator = self._accumulator
            while True:
                raw: Packet | None
                raw, self._pending = self._pending, None
                if raw is None:
                    raw = channel.next_nowait()
                while raw is None:
                    idle = True
                    if self._bounded:
                        raw = await self._next_within(channel)
                    else:
                        await channel.wait()
                        raw = channel.next_nowait()
                    idle = False
                packet = decode_packet(predict_packets, raw, PREDICT_TYPES)
                if type(packet) is PredictSuccess and self._carry:
                    # The stream ended on half a surrogate pair: it was lone after all. It is
                    # handed out as a last U+FFFD fragment before the result, so the fragments
                    # still join to the result's content.
                    self._pending, self._carry = raw, ""
                    packet = FragmentPacket(
                        fragment=PredictionFragment(content="\ufffd", tokens_count=0)
                    )
                elif type(raw) is not msgspec.Raw or self._carry:
                    packet = self._mend(packet)
                if self._quiet and type(packet) is FragmentPacket:
                    return _accumulate(accumulator, packet)
                fragment = await self._handle(packet)
                if fragment is not None or self._state == _DONE:
                    return fragment
        except ChannelClosed:
            self._fail(
                LMStudioProtocolError(
                    f"LM Studio closed the {self._description} without sending its result."
                )
            )
            raise self._error from None  # type: ignore[misc]
        except LMStudioConnectionError as exc:
            withdrawn = self._channel
            parameter = withdrawn.resend_parameter if withdrawn is not None else None
            if (
                parameter is not None
                and self._resend is not None
                and self._resends < _MAX_RESENDS
                and self._can_fall_back()
            ):
                # LM Studio never said anything about it before its socket ran out of
                # warnings: nothing was read, so sending it again on a fresh socket is safe.
                assert withdrawn is not None
                self._resends += 1
                resend, endpoint = self._resend, withdrawn.endpoint
                try:
                    channel = await self._open_with(lambda: resend(endpoint, parameter))
                except LMStudioError as failed:
                    self._fail(failed)
                    raise
                self._attach(channel)
                self._consuming = False
                return await self._next_fragment(for_result=for_result)
            self._fail(exc)
            raise
        except LMStudioRequestRejectedError as exc:
            if exc.endpoint_unknown and self._fallback is not None and self._can_fall_back():
                # An older LM Studio without this endpoint: retry once the compatible way.
                fallback, self._fallback = self._fallback, None
                self._attach(await fallback())
                self._consuming = False
                return await self._next_fragment(for_result=for_result)
            self._fail(exc)
            raise
        except LMStudioError as exc:
            self._fail(exc)
            raise
        except msgspec.ValidationError as exc:
            error = LMStudioProtocolError(
                f"LM Studio sent a {self._description} packet this client cannot read: {exc}"
            )
            self._fail(error)
            raise error from exc
        except BaseException as exc:
            if idle:
                self._abandon_on(exc, for_result=for_result)
            else:
                self._fail_on(exc)
            raise
        finally:
            self._consuming = False
            if self._done_waiters:
                self._wake_waiters()

    def _mend(self, packet: object) -> object:
        """Fragment text as LM Studio meant it: a surrogate pair split across two fragments is
        joined; any other lone half becomes U+FFFD."""
        if type(packet) is not FragmentPacket:
            return packet
        assert isinstance(packet, FragmentPacket)
        piece = packet.fragment
        text = piece if isinstance(piece, str) else piece.content
        text, self._carry = self._carry + text, ""
        if has_surrogates(text):
            if "\ud800" <= text[-1] <= "\udbff":
                text, self._carry = text[:-1], text[-1]
            text = mend_text(text)
        if isinstance(piece, str):
            return msgspec.structs.replace(packet, fragment=text)
        return msgspec.structs.replace(
            packet, fragment=msgspec.structs.replace(piece, content=text)
        )

    def _can_fall_back(self) -> bool:
        return self._accumulator.fragment_count == 0 and self._result is None

    def _take_buffered(self) -> PredictionFragment | None:
        """The ``async for`` fast path: the next fragment if it is buffered and needs no
        awaiting, else ``None`` (then :meth:`_idle_waiter`, or the slow path
        :meth:`_next_fragment`).

        No coroutine is created for a fragment that is waiting in the buffer. Anything else it
        took (another packet type, an undecodable one) is left in ``_pending`` for
        :meth:`_next_fragment`, which handles it with the full error handling.
        """
        channel = self._channel
        if channel is None or self._state != _RUNNING or not self._quiet or self._consuming:
            return None
        if self._pending is not None or self._carry:
            return None
        raw = channel.next_nowait()
        if raw is None:
            return None
        if isinstance(raw, FragmentPacket):
            packet = raw  # decoded by the receive loop together with its envelope
        else:
            try:
                packet = predict_packets.decode(raw)
            except (msgspec.ValidationError, UnicodeDecodeError, TypeError):
                # A packet to mend (see _protocol/_mending.py) or to recover: the slow path.
                self._pending = raw
                return None
            if type(packet) is not FragmentPacket:
                self._pending = raw
                return None
        piece = packet.fragment
        if type(piece) is not PredictionFragment:
            return _accumulate(self._accumulator, packet)
        self._accumulator.add(piece)
        return piece

    def _idle_waiter(self) -> asyncio.Future[None] | None:
        """The channel's future when the only thing to do is wait for the next packet."""
        channel = self._channel
        if (
            channel is None
            or self._state != _RUNNING
            or not self._quiet
            or self._bounded
            or self._consuming
            or self._pending is not None
            or channel.ended
        ):
            return None
        return channel.wait()

    def _abandon_on(self, exc: BaseException, *, for_result: bool = False) -> None:
        """A consumer waiting for the next packet (or for its turn) leaves with ``exc``.

        Cancelled while another consumer still wants the prediction (another ``result()``
        waiter, or for a ``result()`` caller an unfinished ``async for``): that one reads on.
        Otherwise nobody will read the rest: stop the server and release the channel.
        """
        others = self._result_waiters - for_result > 0 or (for_result and self._iterator_serial)
        if others and isinstance(exc, asyncio.CancelledError):
            return
        self._fail_on(exc)

    def _fail_on(self, exc: BaseException) -> None:
        # Cancellation, a timeout around us, or a callback that raised: nobody will read the
        # rest, so stop the server and release the channel.
        self._fail(
            LMStudioCancelledError(
                f"The {self._description} was abandoned: {type(exc).__name__} while it ran."
            )
        )

    async def _handle(self, packet: object) -> PredictionFragment | None:
        kind = type(packet)
        callbacks = self._callbacks
        if kind is FragmentPacket:
            assert isinstance(packet, FragmentPacket)
            first = self._accumulator.fragment_count == 0
            fragment = _accumulate(self._accumulator, packet)
            if callbacks.any_fragment_callback or first:
                await self._fire_fragment_callbacks(fragment, first)
            return fragment
        if kind is PredictSuccess:
            assert isinstance(packet, PredictSuccess)
            await self._complete_progress()
            try:
                self._result = self._accumulator.finish(packet, self._response_format)
            except LMStudioStructuredOutputError as exc:
                self._parse_error = exc
            self._state = _DONE
            self._ended()
            return None
        if kind is PromptProcessingProgress:
            assert isinstance(packet, PromptProcessingProgress)
            await self._report_progress(packet.progress, packet.details)
            return None
        await self._handle_tool_event(packet)
        return None

    async def _fire_fragment_callbacks(self, fragment: PredictionFragment, first: bool) -> None:
        callbacks = self._callbacks
        if first:
            if self._telemetry is not None:
                self._telemetry.first_chunk()
            await self._complete_progress()
            if callbacks.on_first_token is not None:
                await invoke(callbacks.on_first_token)
        if callbacks.on_prediction_fragment is not None:
            await invoke(callbacks.on_prediction_fragment, fragment)

    async def _report_progress(
        self, progress: float, details: PromptProcessingDetails | None = None
    ) -> None:
        progress = min(max(progress, 0.0), 1.0)
        if progress < self._progress_seen:
            return  # never report progress going backwards
        self._progress_seen = progress
        callback = self._callbacks.on_prompt_processing_progress
        if callback is not None:
            if self._callbacks.progress_takes_details:
                await invoke(callback, progress, details)
            else:
                await invoke(callback, progress)

    async def _complete_progress(self) -> None:
        # Older servers omit the final 1.0; the callback's contract is that it ends at 1.0.
        if self._progress_seen < 1.0:
            await self._report_progress(1.0)

    async def _handle_tool_event(self, packet: object) -> None:
        callbacks = self._callbacks
        if isinstance(packet, ToolCallGenerationStart):
            self._tool_call_index += 1
            callback: Any = callbacks.on_tool_call_request_start
            argument: Any = packet.tool_call_id
        elif isinstance(packet, ToolCallGenerationNameReceived):
            callback, argument = callbacks.on_tool_call_request_name_received, packet.name
        elif isinstance(packet, ToolCallGenerationArgumentFragment):
            callback, argument = callbacks.on_tool_call_request_argument_fragment, packet.content
        elif isinstance(packet, ToolCallGenerationEnd):
            callback, argument = callbacks.on_tool_call_request_end, packet.tool_call_request
        elif isinstance(packet, ToolCallGenerationFailed):
            callback = callbacks.on_tool_call_request_failure
            argument = server_error_from_payload(packet.error)
        else:
            return  # unknown packet types (newer servers) are skipped: forward compatibility
        if callback is not None:
            await invoke(callback, self._tool_call_index, argument)

    # -- ending ---------------------------------------------------------------------------------

    def _fail(self, error: BaseException) -> None:
        if self._state in (_DONE, _FAILED):
            return
        self._error = error
        self._state = _FAILED
        if self._channel is not None:
            self._channel.abandon()
        self._ended()

    def _ended(self) -> None:
        """The prediction ended with a result or an error (called exactly once)."""
        if self._telemetry is not None:
            self._telemetry.ended(
                self._result, self._error or self._parse_error, self._accumulator.fragment_count
            )
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        waiters, self._done_waiters = self._done_waiters or (), None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _iterator_released(self, serial: int, stops: bool) -> None:
        """The iterator ``serial`` was dropped unfinished (runs in the client's loop thread).

        ``stops``: an ``async for`` statement created it, so this is a ``break``: stop the
        server. The handle itself stays usable: ``await prediction.result()`` then returns the
        partial result with stop reason ``userStopped``. An explicit iterator (peeking) only
        frees the handle for the next loop.
        """
        if self._iterator_serial != serial:
            return
        self._iterator_serial = 0
        self._backlog = None  # what result() kept for it is in `content` anyway
        if stops and self._state == _RUNNING and self._channel is not None:
            self._channel.cancel()
            if self._telemetry is not None:
                self._telemetry.ended(
                    None,
                    LMStudioCancelledError("abandoned by `break`"),
                    self._accumulator.fragment_count,
                )


def _accumulate(accumulator: PredictionAccumulator, packet: FragmentPacket) -> PredictionFragment:
    piece = packet.fragment
    # Servers before December 2024 sent a bare string.
    fragment = (
        PredictionFragment(content=piece, tokens_count=1) if isinstance(piece, str) else piece
    )
    accumulator.add(fragment)
    return fragment

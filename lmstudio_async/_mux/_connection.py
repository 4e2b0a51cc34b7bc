from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final

import anyio
import msgspec
from anyio.abc import TaskStatus

from .._errors import (
    LMStudioAuthenticationError,
    LMStudioChannelError,
    LMStudioConnectionError,
    LMStudioProtocolError,
    LMStudioRequestRejectedError,
    LMStudioTimeoutError,
    server_error_from_payload,
)
from .._protocol._mending import Payload, decode_lenient
from .._protocol.auth import Credentials, decode_auth_reply
from .._protocol.envelope import (
    ChannelCloseIn,
    ChannelErrorIn,
    ChannelSendIn,
    CommunicationWarningIn,
    RpcErrorIn,
    RpcResultIn,
    decode_envelope,
    encode_channel_create,
    encode_rpc_call,
)
from .._protocol.packets import fragment_sends
from .._timeouts import DEFAULT_TIMEOUTS, Timeouts, explicit_deadline_active
from .._transport import Transport, TransportClosed
from ._channel import Channel
from ._rejections import (
    BARRIER_PARAMETER,
    ENDPOINT_IN_WARNING,
    NO_PARAMETER,
    REJECTING_KINDS,
    WARNING_BUDGET,
    creation_parameter,
    echoed_parameter,
    readable_warning,
    same_json,
    sent_parameter,
    warning_kind,
)
from ._requests import encode_request

__all__ = ["ABANDON_GRACE", "Connection"]

logger = logging.getLogger("lmstudio_async")

ABANDON_GRACE: Final = 10.0
"""Seconds a cancelled channel waits for LM Studio to end it before the client forgets it."""

_RESPONSE_TYPE_IN_FRAME: Final = re.compile(
    r'"type"\s*:\s*"(?:channelSend|channelClose|channelError|rpcResult|rpcError)"'
)
_ID_IN_FRAME: Final = re.compile(r'"(channelId|callId)"\s*:\s*(\d{1,15})')


TransportFactory = Callable[[str], Awaitable[Transport]]


class _PendingCall:
    # The frame stays until the call ends (RPC parameters are small and calls short): a
    # rejection quoting it is about this call, whatever LM Studio answered in between.
    __slots__ = ("endpoint", "frame", "future")

    def __init__(self, endpoint: str, frame: bytes, future: asyncio.Future[Payload]) -> None:
        self.endpoint = endpoint
        self.frame = frame
        self.future = future


class Connection:
    """One authenticated websocket of one namespace, multiplexing channels and RPCs.

    Its whole life is :meth:`run`, a task the client's connection pool owns: connect,
    authenticate, then a writer and a reader until the socket ends. When it ends, every
    operation still in flight on it fails at once with a connection error; the client opens a
    new connection on the next call.
    """

    def __init__(
        self,
        *,
        namespace: str,
        url: str,
        credentials: Credentials,
        transport_factory: TransportFactory,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        auth_timeout: float | None = None,
        prediction_limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        self.namespace = namespace
        self.url = url
        self._credentials = credentials
        self._transport_factory = transport_factory
        if auth_timeout is not None:
            timeouts = dataclasses.replace(timeouts, auth=auth_timeout)
        self.timeouts = timeouts
        self._prediction_limiter = prediction_limiter
        self.authenticated = False
        self._ids = itertools.count(1)
        self._channels: dict[int, Channel] = {}
        self._calls: dict[int, _PendingCall] = {}
        self._outbox: deque[bytes] = deque()
        self._outbox_waiter: asyncio.Future[None] | None = None
        self._socket_closed = False
        self._failure: LMStudioConnectionError | None = None
        self._cancel_scope: anyio.CancelScope | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.abandon_grace = ABANDON_GRACE
        # Rejections come as warnings without an id (PROTOCOL.md §6 item 3). Requests up to
        # _processed_upto are known to have passed validation; an order barrier after each
        # burst of prediction channelCreates (which may wait silently in LM Studio's queue)
        # keeps the set of possibly rejected ones small.
        self._processed_upto = 0
        self._barrier_id = 0
        self._barrier_wanted = False
        self._warnings_seen = 0
        self._unknown_endpoints: set[str] = set()
        # The frames of channels not yet known to have passed validation, by id (ascending):
        # a rejection quotes the refused parameter, and these are what it is compared with.
        # Dropped as soon as LM Studio answers anything sent after them (a round trip).
        self._unconfirmed: dict[int, bytes] = {}
        # Abandoned channels still waiting for LM Studio to end them: their grace timers.
        self._abandoned: dict[int, asyncio.TimerHandle] = {}

    def __repr__(self) -> str:
        state = "open" if self.alive else "closed"
        return (
            f"<Connection {self.namespace} {state} channels={len(self._channels)} "
            f"calls={len(self._calls)}>"
        )

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop this connection runs in (``None`` before it started)."""
        return self._loop

    @property
    def alive(self) -> bool:
        return self._failure is None and self._loop is not None

    @property
    def retired(self) -> bool:
        """LM Studio has used up its warnings on this socket, so it can no longer report a
        rejected request: new work goes to a fresh socket, this one closes once idle."""
        return self._warnings_seen >= WARNING_BUDGET

    def endpoint_unknown(self, endpoint: str) -> bool:
        """Whether LM Studio said on this socket that it does not know ``endpoint``."""
        return endpoint in self._unknown_endpoints

    @property
    def open_channel_count(self) -> int:
        return len(self._channels)

    @property
    def pending_call_count(self) -> int:
        return len(self._calls)

    # -- lifecycle --------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect and authenticate, report started, then serve the socket until it ends."""
        failure: LMStudioConnectionError = LMStudioConnectionError(
            f"The connection to {self.url} was closed."
        )
        transport = await self._open_authenticated()
        try:
            with anyio.CancelScope() as scope:
                self._cancel_scope = scope
                self._loop = asyncio.get_running_loop()
                task_status.started()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._write_loop, transport)
                    try:
                        await self._read_loop(transport)
                    except TransportClosed as exc:
                        logger.debug(
                            "%s: connection to %s lost: %s", self.namespace, self.url, exc.reason
                        )
                        failure = LMStudioConnectionError(
                            f"Lost the connection to LM Studio ({self.url}): {exc.reason}. "
                            "Operations in flight on it failed; the next call reconnects."
                        )
                    except Exception as exc:
                        # A message this client failed to handle is a bug, but it must not
                        # end anything but this socket: it ends like a drop, and the next
                        # call reconnects.
                        logger.exception("Failed to handle a message from LM Studio")
                        failure = LMStudioConnectionError(
                            f"Could not handle a message from LM Studio ({self.url}): {exc!r}. "
                            "Operations in flight on this connection failed; the next call "
                            "reconnects. Please report this as a bug of lmstudio_async."
                        )
                        failure.__cause__ = exc
                    tg.cancel_scope.cancel()
        finally:
            self._fail_everything(failure)
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                # Frames queued as everything shuts down are mostly the cancels of predictions
                # abandoned on the way out: deliver them before the socket goes.
                await self._send_leftovers(transport)
            self._socket_closed = True
            logger.debug("%s: disconnected from %s", self.namespace, self.url)
            self._outbox.clear()
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                await transport.aclose()

    async def _send_leftovers(self, transport: Transport) -> None:
        while self._outbox:
            try:
                await transport.send(self._outbox.popleft())
            except TransportClosed:
                return

    def close(self, reason: LMStudioConnectionError) -> None:
        """End the connection from outside (client shutdown); in-flight work fails with reason."""
        self._fail_everything(reason)
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()

    async def _open_authenticated(self) -> Transport:
        connect_timeout = self.timeouts.connect
        opened: Transport | None = None
        with anyio.move_on_after(connect_timeout):
            opened = await self._transport_factory(self.url)
        if opened is None:
            raise LMStudioTimeoutError(
                f"Could not open a websocket to {self.url} within {connect_timeout:g} s "
                "(Timeouts.connect). Is the host reachable?"
            )
        transport = opened
        auth_timeout = self.timeouts.auth
        try:
            await transport.send(self._credentials.auth_packet())
            # Nothing is pipelined before the server accepts us: LM Studio would swallow any
            # envelope sent early as a bad auth attempt (PROTOCOL.md §1.3).
            with anyio.fail_after(auth_timeout):
                reply_frame = await transport.receive()
            reply = decode_auth_reply(reply_frame)
        except TimeoutError as exc:
            await _close_quietly(transport)
            raise LMStudioTimeoutError(
                f"LM Studio at {self.url} did not answer the authentication handshake within "
                f"{auth_timeout:g} s (Timeouts.auth)."
            ) from exc
        except TransportClosed as exc:
            await _close_quietly(transport)
            raise LMStudioConnectionError(
                f"LM Studio at {self.url} closed the connection during authentication: "
                f"{exc.reason}."
            ) from exc
        except msgspec.DecodeError as exc:
            await _close_quietly(transport)
            raise LMStudioConnectionError(
                f"LM Studio at {self.url} answered the authentication handshake with something "
                "unexpected; is this really LM Studio?"
            ) from exc
        except BaseException:
            await _close_quietly(transport)
            raise
        if not reply.success:
            logger.debug("%s: %s refused authentication: %s", self.namespace, self.url, reply.error)
            await _close_quietly(transport)
            hint = (
                "Check the API token (argument api_token or LM_API_TOKEN / LMSTUDIO_API_TOKEN)."
                if self._credentials.from_token
                else "This server requires an API token: pass api_token='sk-lm-...' or set "
                "LM_API_TOKEN."
            )
            raise LMStudioAuthenticationError(
                f"LM Studio at {self.url} refused authentication: {reply.error or 'no reason'}. "
                + hint
            )
        self.authenticated = True
        kind = "an API token" if self._credentials.from_token else "a guest identity"
        logger.debug("%s: authenticated to %s with %s", self.namespace, self.url, kind)
        return transport

    def _fail_everything(self, failure: LMStudioConnectionError) -> None:
        if self._failure is None:
            self._failure = failure
        failure = self._failure
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            channel._finish(_copy_error(failure))
        self._stop_grace_timers(*self._abandoned)
        self._unconfirmed.clear()
        calls, self._calls = self._calls, {}
        for call in calls.values():
            if not call.future.done():
                call.future.set_exception(_copy_error(failure))
        self._wake_writer()

    # -- sending ----------------------------------------------------------------------------

    def _check_alive(self) -> None:
        if self._failure is not None:
            raise _copy_error(self._failure)

    def enqueue(self, frame: bytes) -> None:
        """Queue a frame for the writer; never blocks. Dropped once the socket is closed."""
        if self._socket_closed:
            return
        self._outbox.append(frame)
        self._wake_writer()

    def _wake_writer(self) -> None:
        waiter = self._outbox_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _write_loop(self, transport: Transport) -> None:
        outbox = self._outbox
        loop = asyncio.get_running_loop()
        while True:
            while outbox:
                # A send that fails means the socket is going away; the reader sees the end
                # and fails everything with the reason, so the writer just stops.
                try:
                    await transport.send(outbox.popleft())
                except TransportClosed:
                    return
            if self._failure is not None:
                return
            waiter = self._outbox_waiter = loop.create_future()
            try:
                await waiter
            finally:
                self._outbox_waiter = None

    def open_channel(self, endpoint: str, parameter: Any = msgspec.UNSET) -> Channel:
        """Register a channel, then queue its ``channelCreate`` (waiter before send, §2.4).

        Raises :class:`LMStudioConnectionError` once the socket is closed or retired (see
        :attr:`retired`): a request sent there could be refused without a word.
        """
        self._check_alive()
        if self.retired:
            raise LMStudioConnectionError(
                "This socket to LM Studio was retired (its five warnings are used up); the next "
                "call uses a fresh connection: retry it."
            )
        channel_id = next(self._ids)
        # Encoded before it is registered: input that cannot be sent leaves nothing behind.
        frame = encode_request(encode_channel_create, endpoint, channel_id, parameter)
        channel = Channel(self, channel_id, endpoint)
        self._channels[channel_id] = channel
        self._unconfirmed[channel_id] = frame
        logger.debug("%s: channel %d (%s) opened", self.namespace, channel_id, endpoint)
        self.enqueue(frame)
        return channel

    def _unregister(self, channel_id: int) -> Channel:
        """Remove a registered channel (the caller checked it is registered) and its frame."""
        self._unconfirmed.pop(channel_id, None)
        return self._channels.pop(channel_id)

    def _want_barrier(self) -> None:
        # One barrier per burst: creates queued in the same loop iteration share it.
        if self._barrier_wanted or self._loop is None:
            return
        self._barrier_wanted = True
        self._loop.call_soon(self._send_barrier)

    def _send_barrier(self) -> None:
        self._barrier_wanted = False
        if self._barrier_id or self._failure is not None:
            return  # one in flight already; its answer sends the next if creates followed
        self._barrier_id = next(self._ids)
        self.enqueue(encode_rpc_call("getModelInfo", self._barrier_id, BARRIER_PARAMETER))

    def _processed(self, request_id: int) -> None:
        """LM Studio answered ``request_id``: it validated every request sent before it."""
        if request_id > self._processed_upto:
            self._processed_upto = request_id
            unconfirmed = self._unconfirmed
            while unconfirmed:
                oldest = next(iter(unconfirmed))
                if oldest > request_id:
                    break
                del unconfirmed[oldest]
        if request_id == self._barrier_id:
            self._barrier_id = 0
            if any(channel_id > request_id for channel_id in self._channels):
                self._want_barrier()

    def cancel_sent(self, channel: Channel) -> None:
        """``channel``'s cancel is queued (a ``break``, ``cancel()``, or nobody reads it any
        more). It keeps its ``max_concurrent_predictions`` slot until LM Studio ends it, so the
        limit bounds what runs there; a server that never does gets ``abandon_grace`` seconds,
        then the channel is forgotten (slot freed, late packets ignored, a reader still waiting
        gets :class:`LMStudioTimeoutError`) so that nothing stays registered or waits forever."""
        if channel.ended or self._loop is None or self._channels.get(channel.id) is not channel:
            return
        if channel.id not in self._abandoned:
            self._abandoned[channel.id] = self._loop.call_later(
                self.abandon_grace, self._forget, channel
            )

    def _stop_grace_timers(self, *channel_ids: int) -> None:
        for channel_id in channel_ids:
            timer = self._abandoned.pop(channel_id, None)
            if timer is not None:
                timer.cancel()

    def _forget(self, channel: Channel) -> None:
        self._abandoned.pop(channel.id, None)
        if self._channels.get(channel.id) is channel:
            self._unregister(channel.id)
            logger.debug(
                "LM Studio did not end %r within %g s of its cancel; forgetting it",
                channel,
                self.abandon_grace,
            )
            channel._finish(
                LMStudioTimeoutError(
                    f"LM Studio did not confirm the cancel of this '{channel.endpoint}' "
                    f"operation within {self.abandon_grace:g} s, so the client stopped waiting "
                    "for its end; what arrived before (e.g. prediction.content) stays readable."
                )
            )

    async def open_prediction_channel(
        self, endpoint: str, parameter: Any = msgspec.UNSET
    ) -> Channel:
        """Open a prediction channel, first waiting (FIFO) for a ``max_concurrent_predictions``
        slot. The slot is held until LM Studio ends the channel, also after the caller
        abandoned it (within :attr:`abandon_grace`, see :meth:`cancel_sent`).
        """
        limiter = self._prediction_limiter
        if limiter is None:
            channel = self.open_channel(endpoint, parameter)
            self._want_barrier()
            channel.takes_fragments = True
            return channel
        self._check_alive()
        borrower = object()
        await limiter.acquire_on_behalf_of(borrower)
        try:
            # The socket may have dropped while this prediction was queued.
            channel = self.open_channel(endpoint, parameter)
        except BaseException:
            limiter.release_on_behalf_of(borrower)
            raise
        channel._slot_release = lambda: limiter.release_on_behalf_of(borrower)
        self._want_barrier()
        channel.takes_fragments = True
        return channel

    async def call(self, endpoint: str, parameter: Any = msgspec.UNSET) -> Payload:
        """Run one RPC and return its raw result (``null`` for a void result).

        Bounded by ``Timeouts.rpc`` unless the caller's own ``timeout=`` governs it.
        """
        self._check_alive()
        assert self._loop is not None
        call_id = next(self._ids)
        frame = encode_request(encode_rpc_call, endpoint, call_id, parameter)
        future: asyncio.Future[Payload] = self._loop.create_future()
        self._calls[call_id] = _PendingCall(endpoint, frame, future)
        try:
            self.enqueue(frame)
            rpc_timeout = self.timeouts.rpc
            if rpc_timeout is None or explicit_deadline_active():
                return await future
            with anyio.move_on_after(rpc_timeout):
                return await future
            raise LMStudioTimeoutError(
                f"LM Studio did not answer '{endpoint}' within {rpc_timeout:g} s "
                "(Timeouts.rpc); the call was abandoned."
            )
        finally:
            # Also on cancellation: a late result for this id is then simply ignored.
            self._calls.pop(call_id, None)
            if self._warnings_seen >= WARNING_BUDGET:
                self._close_if_retired()

    # -- receiving --------------------------------------------------------------------------

    async def _read_loop(self, transport: Transport) -> None:
        receive = transport.receive
        channels = self._channels
        decode_fragment = fragment_sends.decode
        while True:
            frame = await receive()
            # The hottest path: a fragment for an open prediction, decoded once, whole. Any
            # other frame fails this decode and takes the general path below.
            try:
                sent = decode_fragment(frame)
            except (msgspec.DecodeError, UnicodeError):
                pass  # odd text (invalid UTF-8, lone surrogates) is mended on the general path
            else:
                channel = channels.get(sent.channel_id)
                if channel is not None and channel.takes_fragments:
                    channel._feed(sent.message)
                    continue
            try:
                envelope = decode_envelope(frame)
            except (msgspec.DecodeError, UnicodeError):
                # Off the hot path: odd text (invalid UTF-8, lone surrogates) or no envelope.
                recovered = self._recover(frame)
                if recovered is None:
                    continue
                envelope = recovered
            # The hot path: a packet for an open channel is handed over without further work.
            if type(envelope) is ChannelSendIn:
                channel = channels.get(envelope.channel_id)
                if channel is not None:
                    channel._feed(envelope.message)
                continue
            self._dispatch(envelope)

    def _dispatch(self, envelope: Any) -> None:
        # Errors are built before the call or channel is unregistered: should building one
        # fail, the operation is still registered and fails with the connection (never hangs).
        if type(envelope) is RpcResultIn:
            self._processed(envelope.call_id)
            call = self._calls.pop(envelope.call_id, None)
            if call is not None and not call.future.done():
                call.future.set_result(envelope.result)
        elif type(envelope) is RpcErrorIn:
            self._processed(envelope.call_id)
            if envelope.call_id in self._calls:
                error = server_error_from_payload(envelope.error)
                call = self._calls.pop(envelope.call_id)
                if not call.future.done():
                    call.future.set_exception(error)
        elif type(envelope) is ChannelCloseIn:
            if envelope.channel_id in self._channels:
                # An end proves LM Studio took the channel, and everything sent before it.
                self._processed(envelope.channel_id)
                channel = self._unregister(envelope.channel_id)
                self._stop_grace_timers(envelope.channel_id)
                channel._finish(None)
                logger.debug(
                    "%s: channel %d (%s) closed", self.namespace, channel.id, channel.endpoint
                )
        elif type(envelope) is ChannelErrorIn:
            if envelope.channel_id in self._channels:
                self._processed(envelope.channel_id)
                self._stop_grace_timers(envelope.channel_id)
                error = server_error_from_payload(envelope.error, default=LMStudioChannelError)
                self._unregister(envelope.channel_id)._finish(error)
                logger.debug(
                    "%s: channel %d ended with an error", self.namespace, envelope.channel_id
                )
        elif type(envelope) is CommunicationWarningIn:
            self._on_warning(envelope)
        if self._warnings_seen >= WARNING_BUDGET:
            self._close_if_retired()
        # channelAck, keepAliveAck and signal messages carry nothing a client of the public
        # endpoints needs; they are tolerated and dropped.

    def _recover(self, frame: str | bytes) -> Any:
        """The envelope of a frame the strict decoder refused, or ``None`` if it has none."""
        try:
            return decode_lenient(frame)
        except msgspec.DecodeError:
            # JSON, but not an envelope this client knows: a newer server's, or a broken one.
            self._on_undecodable(frame, json_ok=True)
        except ValueError:
            self._on_undecodable(frame, json_ok=False)
        return None

    def _on_undecodable(self, frame: str | bytes, *, json_ok: bool = False) -> None:
        # Unknown envelope types come from newer servers; malformed JSON from broken ones.
        # Neither may take the connection down (PROTOCOL.md §6 item 4). But a frame that names
        # an operation of ours was meant for it: that operation fails instead of waiting for
        # something that was lost.
        text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
        logger.warning("Ignoring a frame from LM Studio this client cannot use: %s", text[:200])
        if json_ok and _RESPONSE_TYPE_IN_FRAME.search(text) is None:
            return  # an envelope type from a newer server: not meant for one of ours
        for match in _ID_IN_FRAME.finditer(text):
            kind, request_id = match.group(1), int(match.group(2))
            error = LMStudioProtocolError(
                "LM Studio sent a frame for this operation that this client cannot read, so "
                f"its content was lost: {text[:120]!r}"
            )
            if kind == "channelId" and request_id in self._channels:
                self._unregister(request_id)._finish(error)
            elif kind == "callId" and request_id in self._calls:
                call = self._calls.pop(request_id)
                if not call.future.done():
                    call.future.set_exception(error)

    def _on_warning(self, warning: CommunicationWarningIn) -> None:
        kind = warning_kind(warning.kind, warning.warning)
        # "channelUnknown" answers a cancel that crossed the server's end of the prediction
        # (a `break` on the last fragment): expected, so not worth a warning in the user's log.
        level = logging.DEBUG if kind == "channelUnknown" else logging.WARNING
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "LM Studio reported a protocol problem (%s): %s",
                kind,
                readable_warning(warning.warning),
            )
        self._warnings_seen += 1
        if kind in REJECTING_KINDS:
            self._on_rejection(kind, warning.warning)
        if self._warnings_seen == WARNING_BUDGET:
            self._withdraw_unvouched()
        if self.retired:
            logger.debug("LM Studio's warning budget on %s is used up; retiring it", self.url)
            self._close_if_retired()

    def _on_rejection(self, kind: str, warning: str) -> None:
        match = ENDPOINT_IN_WARNING.search(warning)
        endpoint = match.group(1) if match else None
        endpoint_unknown = kind.endswith(("EndpointUnknown", "EndpointUnhandled"))
        if endpoint is not None and endpoint_unknown:
            self._unknown_endpoints.add(endpoint)
        said = readable_warning(warning)

        def rejected(name: str) -> LMStudioRequestRejectedError:
            return LMStudioRequestRejectedError(
                f"LM Studio rejected the request to '{name}' ({kind}): {said}. This usually "
                "means the LM Studio app is older than this SDK expects; update LM Studio.",
                kind=kind,
                endpoint=name,
            )

        # Requests LM Studio already answered passed validation, and so did every request
        # sent before one it answered: only later ones can be the rejected one.
        rpc = kind.startswith("rpc")
        suspects = self._suspects(rpc=rpc, endpoint=endpoint)
        if endpoint_unknown and endpoint is not None:
            # An unknown endpoint refuses every request to it, and none of them runs.
            named = self._suspects(rpc=rpc, endpoint=endpoint, after=0)
        elif endpoint_unknown:
            named = suspects
        else:
            # The parameter LM Studio quotes names the one. An RPC is found by it even if LM
            # Studio answered later calls first (a check that finished after theirs).
            quotable = self._suspects(rpc=True, endpoint=endpoint, after=0) if rpc else suspects
            named = self._quoted(warning, quotable) or suspects
        ambiguous = len(named) > 1 and not endpoint_unknown
        if ambiguous:
            # No quote to go by, and sent before LM Studio answered anything after them: which
            # one was refused is unknowable. All fail, and each gets a cancel so that the ones
            # LM Studio did accept do not keep generating unread.
            logger.warning(
                "LM Studio rejected one of %d requests to '%s' sent together; failing all of them",
                len(named),
                endpoint,
            )
        for request_id in named:
            self._fail_request(request_id, rejected, cancel=ambiguous)

    def _withdraw_unvouched(self) -> None:
        """LM Studio's last warning on this socket arrived: should it refuse a request sent
        before it heard of this, nothing would ever say so. Every request it has not vouched
        for yet is withdrawn instead of left to wait forever: cancelled there, failed here with
        a connection error (the socket is replaced), and a prediction keeps its creation
        parameter so that its stream sends it again on the fresh socket."""
        error = (
            "LM Studio has used up its five warnings on this socket, so it could no longer "
            "report refusing this request; the request was withdrawn before LM Studio answered "
            "anything about it, and the next call uses a fresh connection: retry it."
        )
        channel_ids = self._suspects(rpc=False, endpoint=None)
        for channel_id in channel_ids:
            frame = self._unconfirmed.get(channel_id)
            if frame is not None:
                self._channels[channel_id].resend_parameter = creation_parameter(frame)
        withdrawn = channel_ids + self._suspects(rpc=True, endpoint=None)
        if withdrawn:
            logger.debug("%s: withdrawing requests %s", self.namespace, withdrawn)
        for request_id in withdrawn:
            self._fail_request(request_id, lambda _: LMStudioConnectionError(error), cancel=True)

    def _suspects(self, *, rpc: bool, endpoint: str | None, after: int | None = None) -> list[int]:
        """The RPCs or channels (to ``endpoint``, if known) that may be a rejected request:
        sent after ``after`` (default: everything LM Studio is known to have taken), and not
        heard from since."""
        floor = after
        if floor is None:
            floor = max(
                [self._processed_upto]
                + [channel_id for channel_id, c in self._channels.items() if c.packets_received]
            )
        if rpc:
            return [
                call_id
                for call_id, call in self._calls.items()
                if call_id > floor and endpoint in (None, call.endpoint) and not call.future.done()
            ]
        return [
            channel_id
            for channel_id, channel in self._channels.items()
            if channel_id > floor
            and channel.packets_received == 0
            and endpoint in (None, channel.endpoint)
        ]

    def _fail_request(
        self, request_id: int, error: Callable[[str], Exception], *, cancel: bool
    ) -> None:
        """Fail the RPC or channel ``request_id`` with ``error(endpoint)``; a channel LM Studio
        may have taken after all is cancelled there first when ``cancel`` (an RPC cannot be)."""
        call = self._calls.pop(request_id, None)
        if call is not None:
            if not call.future.done():
                call.future.set_exception(error(call.endpoint))
            return
        channel = self._unregister(request_id)
        if cancel:
            channel.cancel()
        channel._finish(error(channel.endpoint))

    def _quoted(self, warning: str, request_ids: list[int]) -> list[int]:
        """Of the requests that may be the rejected one, the one the warning quotes (``[]``
        if it quotes none of them, or nothing usable).

        LM Studio quotes the refused parameter, and it judges the same parameter the same way
        every time: the oldest request that sent exactly it is the one (an identical later one
        gets its own warning).
        """
        quoted = echoed_parameter(warning)
        if quoted is NO_PARAMETER:
            return []
        for request_id in request_ids:
            call = self._calls.get(request_id)
            frame = call.frame if call is not None else self._unconfirmed.get(request_id)
            if frame is not None and same_json(sent_parameter(frame), quoted):
                return [request_id]
        return []

    def _close_if_retired(self) -> None:
        if self.retired and not self._channels and not self._calls and self._failure is None:
            self.close(LMStudioConnectionError("This socket was retired (warning budget)."))


def _copy_error(error: LMStudioConnectionError) -> LMStudioConnectionError:
    """A fresh exception per waiter, so tracebacks of different operations don't pile up."""
    copy = type(error)(*error.args)
    copy.__cause__ = error.__cause__
    return copy


async def _close_quietly(transport: Transport) -> None:
    with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
        await transport.aclose()

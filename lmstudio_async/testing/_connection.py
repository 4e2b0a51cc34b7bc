"""One authenticated websocket: envelope dispatch, channels, RPCs, warnings.

Every send goes through :meth:`Connection.send`, which holds a lock for the whole frame so
packets of concurrent channels never interleave (per-socket FIFO, one writer at a time).
Channel and RPC handlers run as tasks of the connection's task group; when the socket goes
away the group is cancelled, so nothing outlives its connection.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeGuard

import aiohttp
import anyio
import anyio.abc
import msgspec
from aiohttp import web

from . import _envelope as env
from ._envelope import InvalidParameter, SimulatorError
from ._firehose import ws_text_frame

if TYPE_CHECKING:
    from ._faults import EndpointFault
    from ._state import ServerState

__all__ = ["MISSING", "ChannelContext", "ChannelEndpoint", "Connection", "Namespace"]

_log = logging.getLogger("lmstudio_async.testing")

MISSING: Any = msgspec.UNSET
"""Stands for an absent ``parameter``/``creationParameter`` (void endpoints)."""

_MAX_WARNINGS = 5
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_HIGH_WATER = 1 << 20  # wait for the socket to drain above this many buffered bytes


RpcHandler = Callable[["Connection", Any], Awaitable[Any]]


@dataclass(frozen=True)
class ChannelEndpoint:
    """``validate`` runs before the channel opens (failure = warning only); ``run`` drives it."""

    validate: Callable[[Any], Any]
    run: Callable[[ChannelContext, Any], Awaitable[None]]
    client_packets: frozenset[str] = frozenset({"cancel"})


@dataclass
class Namespace:
    """The endpoints one namespace path serves.

    ``unsupported``: answer requests to any other endpoint with an error carrying this title
    (a namespace the simulator only stubs) instead of the app's unknown-endpoint warning.
    """

    rpcs: dict[str, RpcHandler] = field(default_factory=dict)
    channels: dict[str, ChannelEndpoint] = field(default_factory=dict)
    unsupported: str | None = None


class ChannelContext:
    """The server side of one open channel."""

    def __init__(self, conn: Connection, channel_id: int, endpoint: str) -> None:
        self.conn = conn
        self.channel_id = channel_id
        self.endpoint = endpoint
        self.cancel_requested = anyio.Event()
        self.received: list[dict[str, Any]] = []
        self.on_cancel: Callable[[], None] | None = None

    @property
    def state(self) -> ServerState:
        return self.conn.state

    async def send(self, packet: dict[str, Any] | msgspec.Raw) -> None:
        await self.conn.send(env.channel_send(self.channel_id, packet))

    def deliver(self, packet: dict[str, Any]) -> None:
        self.received.append(packet)
        if packet.get("type") in ("cancel", "stop"):
            self.cancel_requested.set()
            if self.on_cancel is not None:
                self.on_cancel()

    async def wait_cancel(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Sleep up to ``timeout`` (forever if None); True as soon as a cancel arrived."""
        if self.cancel_requested.is_set():
            return True
        with anyio.move_on_after(timeout):
            await self.cancel_requested.wait()
        return self.cancel_requested.is_set()


class Connection:
    """One authenticated namespace socket and the work running on it."""

    def __init__(
        self,
        *,
        connection_id: int,
        namespace_name: str,
        namespace: Namespace,
        state: ServerState,
        ws: web.WebSocketResponse,
        abort: Callable[[], None],
        client_identifier: str,
        record: list[tuple[str, str, dict[str, Any]]] | None,
    ) -> None:
        self.id = connection_id
        self.namespace_name = namespace_name
        self.namespace = namespace
        self.state = state
        self.ws = ws
        self.client_identifier = client_identifier
        self.channels: dict[int, ChannelContext] = {}
        self._abort = abort
        self._record = record
        self._lock = anyio.Lock()
        self._warnings_sent = 0
        self._tg: anyio.abc.TaskGroup | None = None

    # ---- output --------------------------------------------------------------------------

    async def send(self, frame: bytes) -> None:
        """Send one text frame; a dead socket cancels the whole connection."""
        async with self._lock:
            try:
                await self.ws.send_frame(frame, aiohttp.WSMsgType.TEXT)
            except (ConnectionError, RuntimeError, aiohttp.ClientError):
                self.close_now()
                await anyio.lowlevel.checkpoint()
                raise
        if self._record is not None:
            self._record.append(("sent", self.namespace_name, _decode_sent(frame)))

    async def send_frames(self, frames: Sequence[bytes]) -> None:
        """Send several text frames with one socket write (a dead socket cancels all).

        One ``send`` per frame costs a system call and an event-loop turn each, which made a
        long unpaced reply cost far more than the work of encoding it. Like the firehose
        (``_firehose``), this writes ready-made unmasked frames to aiohttp's transport under
        the send lock, then honours flow control.
        """
        writer = self.ws._writer
        if writer is None:
            raise RuntimeError("websocket is not prepared")
        data = b"".join([ws_text_frame(frame) for frame in frames])
        async with self._lock:
            transport = writer.transport
            if transport is None or transport.is_closing():
                self.close_now()
                await anyio.lowlevel.checkpoint()
                raise ConnectionResetError("simulator: socket closed")
            transport.write(data)
        if self._record is not None:
            self._record.extend(("sent", self.namespace_name, _decode_sent(f)) for f in frames)
        if transport.get_write_buffer_size() > _HIGH_WATER:
            await writer.protocol._drain_helper()

    async def send_garbage(self, text: str) -> None:
        """A text frame that is not JSON (fault injection); not recorded."""
        async with self._lock:
            await self.ws.send_frame(text.encode(), aiohttp.WSMsgType.TEXT)

    async def warn(self, kind: str, text: str) -> None:
        """``communicationWarning``, at most five per connection like the app's ports."""
        _log.info("simulator warning (%s): %s", kind, text)
        if self._warnings_sent >= _MAX_WARNINGS:
            return
        self._warnings_sent += 1
        await self.send(env.warning(kind, text))

    def close_now(self) -> None:
        """Abort the TCP connection (no close frame) and stop all work on it."""
        self._abort()
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    # ---- input ---------------------------------------------------------------------------

    async def serve(self) -> None:
        """Receive and dispatch frames until the socket closes."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                async for msg in self.ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        continue
                    await self._on_text(tg, msg.data)
            finally:
                tg.cancel_scope.cancel()

    async def _on_text(self, tg: anyio.abc.TaskGroup, text: str) -> None:
        try:
            frame = env.decode(text)
        except msgspec.DecodeError:
            _log.warning("simulator dropped a malformed frame: %.200r", text)
            return
        if self._record is not None:
            self._record.append(("received", self.namespace_name, frame))
        if not isinstance(frame, dict):
            _log.warning("simulator dropped a non-object frame")
            return
        kind = frame.get("type")
        if kind == "rpcCall":
            await self._on_rpc_call(tg, frame)
        elif kind == "channelCreate":
            await self._on_channel_create(tg, frame)
        elif kind == "channelSend":
            await self._on_channel_send(frame)
        elif kind == "keepAlive":
            await self.send(env.KEEP_ALIVE_ACK)
        elif kind == "channelAck":
            if frame.get("channelId") not in self.channels:
                await self.warn("channelUnknown", "Received channelAck for an unknown channel")
        elif kind in ("signalSubscribe", "writableSignalSubscribe"):
            prefix = "signal" if kind == "signalSubscribe" else "writableSignal"
            await self.warn(
                f"{prefix}EndpointUnknown", f"Unknown signal endpoint {frame.get('endpoint')!r}"
            )
        elif kind == "communicationWarning":
            _log.info("client warning: %s", frame.get("warning"))
        else:
            _log.warning("simulator dropped an envelope of unknown type %r", kind)

    async def _on_rpc_call(self, tg: anyio.abc.TaskGroup, frame: dict[str, Any]) -> None:
        endpoint, call_id = frame.get("endpoint"), frame.get("callId")
        if not isinstance(endpoint, str) or not _is_int(call_id):
            _log.warning("simulator dropped an invalid rpcCall envelope")
            return
        handler = self.namespace.rpcs.get(endpoint)
        if handler is None and self.namespace.unsupported is not None:
            error = env.serialized_error(self.namespace.unsupported, cause=f"Endpoint {endpoint}")
            await self.send(env.rpc_error(call_id, error))
            return
        if handler is None:
            await self.warn(
                "rpcEndpointUnknown",
                f"Received rpcCall for unknown endpoint, endpoint = {endpoint}",
            )
            return
        param = frame.get("parameter", MISSING)
        fault = self.state.endpoint_fault(
            self.namespace_name, endpoint, None if param is MISSING else param
        )
        if fault is not None and fault.reject:
            # Refused before any handler runs, in the order requests arrive, as LM Studio does.
            await self.warn(
                "rpcParameterTypeError",
                f"Received invalid parameter for rpcCall, endpointName = {endpoint}, "
                f"parameter = {_quote(param)}. Zod error:\n\n"
                "rejected by the simulator (EndpointFault.reject)",
            )
            return
        tg.start_soon(self._run_rpc, handler, endpoint, call_id, param, fault)

    async def _run_rpc(
        self,
        handler: RpcHandler,
        endpoint: str,
        call_id: int,
        param: Any,
        fault: EndpointFault | None,
    ) -> None:
        if fault is not None and fault.error is not None:
            frame = env.rpc_error(call_id, fault.error)
        elif fault is not None and fault.raw_result is not None:
            frame = b'{"type":"rpcResult","callId":%d,"result":%b}' % (call_id, fault.raw_result)
        else:
            try:
                result = await handler(self, param)
            except InvalidParameter as exc:
                await self.warn(
                    "rpcParameterTypeError",
                    f"Received invalid parameter for rpcCall, endpointName = {endpoint}, "
                    f"parameter = {_quote(param)}. Zod error:\n\n{exc}",
                )
                return
            except SimulatorError as exc:
                frame = env.rpc_error(call_id, exc.error)
            else:
                frame = env.rpc_result(call_id, result)
        if fault is not None and fault.delay:
            await anyio.sleep(fault.delay)
        faults = self.state.faults
        if faults.stall_rpcs:
            await anyio.sleep_forever()
        if faults.rpc_delay:
            await anyio.sleep(faults.rpc_delay)
        await self.send(frame)

    async def _on_channel_create(self, tg: anyio.abc.TaskGroup, frame: dict[str, Any]) -> None:
        endpoint, channel_id = frame.get("endpoint"), frame.get("channelId")
        if not isinstance(endpoint, str) or not _is_int(channel_id):
            _log.warning("simulator dropped an invalid channelCreate envelope")
            return
        spec = self.namespace.channels.get(endpoint)
        if spec is None and self.namespace.unsupported is not None:
            error = env.serialized_error(self.namespace.unsupported, cause=f"Endpoint {endpoint}")
            await self.send(env.channel_error(channel_id, error))
            return
        if spec is None:
            await self.warn(
                "channelEndpointUnknown",
                f"Received channelCreate for unknown endpoint, endpoint = {endpoint}",
            )
            return
        if channel_id in self.channels:
            await self.warn("channelAlreadyOpen", f"Channel {channel_id} is already open")
            return
        parameter = frame.get("creationParameter", MISSING)
        fault = self.state.endpoint_fault(
            self.namespace_name, endpoint, None if parameter is MISSING else parameter
        )
        if fault is not None and fault.error is not None:
            await self.send(env.channel_error(channel_id, fault.error))
            return
        rejection = None
        if fault is not None and fault.reject:
            rejection = "rejected by the simulator (EndpointFault.reject)"
        else:
            try:
                parsed = spec.validate(parameter)
            except InvalidParameter as exc:
                rejection = str(exc)
        if rejection is not None:
            # LM Studio's wording, quoting the parameter: clients tell requests apart by it.
            await self.warn(
                "channelCreationParameterTypeError",
                f"Received invalid creationParameter for channel, endpointName = {endpoint}, "
                f"creationParameter = {_quote(parameter)}. Zod error:\n\n{rejection}",
            )
            return
        ctx = ChannelContext(self, channel_id, endpoint)
        self.channels[channel_id] = ctx
        tg.start_soon(self._run_channel, spec, ctx, parsed)

    async def _run_channel(self, spec: ChannelEndpoint, ctx: ChannelContext, parsed: Any) -> None:
        try:
            try:
                await spec.run(ctx, parsed)
            except SimulatorError as exc:
                frame = env.channel_error(ctx.channel_id, exc.error)
            except Exception as exc:  # a simulator bug must still end the channel visibly
                _log.exception("simulator channel handler failed")
                frame = env.channel_error(
                    ctx.channel_id, env.serialized_error(f"Simulator internal error: {exc}")
                )
            else:
                frame = env.channel_close(ctx.channel_id)
            # Forget the channel before the terminal frame leaves: a client reusing the id
            # right after seeing channelClose must not hit channelAlreadyOpen.
            self.channels.pop(ctx.channel_id, None)
            await self.send(frame)
        finally:
            self.channels.pop(ctx.channel_id, None)

    async def _on_channel_send(self, frame: dict[str, Any]) -> None:
        channel_id, message = frame.get("channelId"), frame.get("message")
        if not _is_int(channel_id):
            _log.warning("simulator dropped an invalid channelSend envelope")
            return
        ctx = self.channels.get(channel_id)
        if ctx is None:
            await self.warn(
                "channelUnknown", f"Received channelSend for unknown channel {channel_id}"
            )
            return
        spec = self.namespace.channels[ctx.endpoint]
        if not isinstance(message, dict) or message.get("type") not in spec.client_packets:
            await self.warn(
                "channelMessageTypeError",
                f"Received invalid message for channel, endpointName = {ctx.endpoint}",
            )
            return
        ctx.deliver(message)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _decode_sent(frame: bytes) -> Any:
    """A sent frame for the record; frames made invalid on purpose are decoded leniently."""
    try:
        return env.decode(frame)
    except (msgspec.DecodeError, UnicodeError):
        # Lone surrogate escapes and invalid UTF-8 (EndpointFault, Fragment): json keeps the
        # surrogates, and undecodable bytes become U+FFFD.
        return json.loads(frame.decode("utf-8", "replace"))


def _quote(value: Any) -> str:
    """A parameter as LM Studio quotes it in a warning: ``JSON.stringify`` (compact, text
    as is, lone surrogates escaped), ``undefined`` when absent."""
    if value is MISSING:
        return "undefined"
    quoted = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)

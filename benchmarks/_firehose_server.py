"""The benchmark's websocket firehose: LM Studio's predict traffic at a cost near zero per fragment.

Not the simulator: a server that does only what scenarios 1-4 need, so that its own work per
fragment is one ``bytes`` multiplication. Every namespace socket authenticates anyone;
``getOrLoad`` answers ``alreadyLoaded`` for any model; ``predict`` streams ``N`` identical
fragments (``N`` = the request's ``maxPredictedTokens``, else 100), each carrying a space and
the prompt's text, so a client running many predictions can check that every fragment reached
its own prediction. A prediction's frames (two ``promptProcessingProgress``, the fragment,
``success``, ``channelClose``) are encoded once, when its ``channelCreate`` arrives.

One pump per socket writes them, in one of two interleavings:

* ``sequential``: channels one after another, each as large writes of its own fragments
  (``_BATCH_BYTES`` per ``transport.write``);
* ``interleaved``: the fragments of every open channel interleaved frame by frame (one fragment
  of each channel, then the next of each, ...), again ``_BATCH_BYTES`` per write.

Frames are written with ``transport.write`` under the socket's normal flow control (the pump
waits while the transport is paused), and always as whole frames from the event loop thread,
so frames never interleave mid-frame. The pump yields between writes so that new channels and
cancels are taken in.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any, Final, Literal

import msgspec
from aiohttp import WSMsgType, web

from lmstudio_async.testing._basemodel import default_prediction_fields
from lmstudio_async.testing._catalog import Instance, default_catalog
from lmstudio_async.testing._firehose import ws_text_frame

__all__ = ["Interleaving", "firehose_app"]

Interleaving = Literal["sequential", "interleaved"]

_BATCH_BYTES: Final = 256 * 1024
_DEFAULT_FRAGMENTS: Final = 100
_MAX_TAG: Final = 64


class _Envelope(msgspec.Struct, rename="camel"):
    """What the server reads of a client frame; the rest of it is skipped unparsed."""

    type: str = ""
    endpoint: str = ""
    channel_id: int = 0
    call_id: int = 0
    creation_parameter: msgspec.Raw = msgspec.Raw(b"null")
    message: msgspec.Raw = msgspec.Raw(b"null")


class _Part(msgspec.Struct, frozen=True):
    type: str = ""
    text: str = ""


class _Message(msgspec.Struct, frozen=True):
    role: str = ""
    content: str | tuple[_Part, ...] = ""


class _History(msgspec.Struct, frozen=True):
    messages: tuple[_Message, ...] = ()


class _Field(msgspec.Struct, frozen=True):
    key: str
    value: Any = None


class _Config(msgspec.Struct, frozen=True):
    fields: tuple[_Field, ...] = ()


class _Layer(msgspec.Struct, frozen=True):
    config: _Config = _Config()


class _Stack(msgspec.Struct, frozen=True):
    layers: tuple[_Layer, ...] = ()


class _Predict(msgspec.Struct, frozen=True, rename="camel"):
    history: _History = _History()
    prediction_config_stack: _Stack = _Stack()


class _Cancel(msgspec.Struct, frozen=True):
    type: str = ""


_decode_envelope: Final = msgspec.json.Decoder(_Envelope).decode
_decode_predict: Final = msgspec.json.Decoder(_Predict).decode
_decode_cancel: Final = msgspec.json.Decoder(_Cancel).decode
_encode: Final = msgspec.json.Encoder().encode


def _tag(predict: _Predict) -> str:
    for message in reversed(predict.history.messages):
        if message.role != "user":
            continue
        content = message.content
        text = content if isinstance(content, str) else " ".join(p.text for p in content)
        text = " ".join(text.split())[:_MAX_TAG]
        if text:
            return text
    return "tok"


def _limit(predict: _Predict) -> tuple[int, bool]:
    """(fragments to send, whether the request set the limit)."""
    count, limited = _DEFAULT_FRAGMENTS, False
    for layer in predict.prediction_config_stack.layers:
        for field in layer.config.fields:
            if field.key != "llm.prediction.maxPredictedTokens":
                continue
            value = field.value
            if isinstance(value, dict) and isinstance(value.get("value"), int):
                limited = bool(value.get("checked"))
                count = max(0, value["value"]) if limited else _DEFAULT_FRAGMENTS
    return count, limited


class _Model:
    """The one loaded model every request resolves to, its wire structures encoded once."""

    def __init__(self) -> None:
        spec = default_catalog()[0]
        instance = Instance(
            spec=spec,
            identifier=spec.model_key,
            instance_reference="bench-inst-1",
            context_length=spec.default_context_length,
        )
        self.info = instance.info()
        self.load_config = instance.load_config()
        # LM Studio reports every effective prediction setting, so a client pays for reading
        # them once per prediction; an empty config here would flatter it.
        fields = default_prediction_fields().items()
        self.prediction_config = {"fields": [{"key": k, "value": v} for k, v in fields]}


class _Stream:
    """One prediction's pre-encoded frames and how many fragments it still has to send."""

    __slots__ = ("channel_id", "count", "frame", "head", "remaining", "tail")

    def __init__(self, channel_id: int, head: bytes, frame: bytes, count: int, tail: bytes) -> None:
        self.channel_id = channel_id
        self.head = head
        self.frame = frame
        self.count = self.remaining = count
        self.tail = tail


class _Pump:
    """The writer of one socket: streams every open prediction in the chosen interleaving."""

    def __init__(self, ws: web.WebSocketResponse, interleaving: Interleaving) -> None:
        writer = ws._writer
        assert writer is not None
        self._transport = writer.transport
        self._protocol = writer.protocol
        self._interleaved = interleaving == "interleaved"
        self._open: dict[int, _Stream] = {}
        self._wake = asyncio.Event()

    def write(self, data: bytes) -> None:
        if not self._transport.is_closing():
            self._transport.write(data)

    def add(self, stream: _Stream) -> None:
        self._open[stream.channel_id] = stream
        self._wake.set()

    def cancel(self, channel_id: int, model: _Model) -> None:
        """Stop a prediction: what was written stays, then ``success`` (``userStopped``)."""
        stream = self._open.pop(channel_id, None)
        if stream is not None:
            sent = stream.count - stream.remaining
            self.write(stream.head + _end(model, channel_id, "userStopped", sent))

    async def run(self) -> None:
        while True:
            if not self._open:
                self._wake.clear()
                await self._wake.wait()
                continue
            streams = list(self._open.values())
            if self._interleaved:
                data = self._interleaved_batch(streams)
            else:
                data = self._sequential_batch(streams[0])
            self.write(data)
            if self._protocol._paused:
                await self._protocol._drain_helper()
            else:
                await asyncio.sleep(0)

    def _sequential_batch(self, stream: _Stream) -> bytes:
        count = min(stream.remaining, max(1, _BATCH_BYTES // len(stream.frame)))
        return self._take([stream], stream.frame * count, count)

    def _interleaved_batch(self, streams: list[_Stream]) -> bytes:
        round_ = b"".join(s.frame for s in streams)
        count = min(min(s.remaining for s in streams), max(1, _BATCH_BYTES // len(round_)))
        return self._take(streams, round_ * count, count)

    def _take(self, streams: Iterable[_Stream], body: bytes, count: int) -> bytes:
        heads: list[bytes] = []
        tails: list[bytes] = []
        for stream in streams:
            if stream.head:
                heads.append(stream.head)
                stream.head = b""
            stream.remaining -= count
            if stream.remaining <= 0:
                tails.append(stream.tail)
                del self._open[stream.channel_id]
        return b"".join([*heads, body, *tails])


def _frame(message: Any) -> bytes:
    return ws_text_frame(_encode(message))


def _send_frame(channel_id: int, packet: Any) -> bytes:
    return _frame({"type": "channelSend", "channelId": channel_id, "message": packet})


def _progress(channel_id: int, progress: int) -> bytes:
    done = 18 * progress
    details = {
        "cachedTokenCount": 0,
        "totalPromptTokenCount": 18,
        "processedPromptTokenCount": done,
        "unprocessedPromptTokenCount": 18 - done,
    }
    packet = {"type": "promptProcessingProgress", "progress": progress, "details": details}
    return _send_frame(channel_id, packet)


def _end(model: _Model, channel_id: int, stop_reason: str, tokens: int) -> bytes:
    stats = {
        "stopReason": stop_reason,
        "numGpuLayers": -1,
        "promptTokensCount": 18,
        "predictedTokensCount": tokens,
        "totalTokensCount": 18 + tokens,
    }
    success = {
        "type": "success",
        "stats": stats,
        "modelInfo": model.info,
        "loadModelConfig": model.load_config,
        "predictionConfig": model.prediction_config,
    }
    close = _frame({"type": "channelClose", "channelId": channel_id})
    return _send_frame(channel_id, success) + close


def _stream(model: _Model, channel_id: int, raw: msgspec.Raw) -> _Stream:
    """A prediction's frames, encoded once from its ``channelCreate`` parameter."""
    predict = _decode_predict(raw)
    count, limited = _limit(predict)
    fragment = {
        "content": " " + _tag(predict),
        "tokensCount": 1,
        "containsDrafted": False,
        "reasoningType": "none",
        "isStructural": False,
    }
    frame = _send_frame(channel_id, {"type": "fragment", "fragment": fragment})
    head = _progress(channel_id, 0) + _progress(channel_id, 1)
    reason = "maxPredictedTokensReached" if limited else "eosFound"
    return _Stream(channel_id, head, frame, count, _end(model, channel_id, reason, count))


async def _greeting(_request: web.Request) -> web.Response:
    return web.json_response({"lmstudio": True})


def firehose_app(interleaving: Interleaving) -> web.Application:
    """An aiohttp application serving every namespace socket with one interleaving."""
    model = _Model()

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        auth = await ws.receive()
        if auth.type is not WSMsgType.TEXT:
            await ws.close()
            return ws
        await ws.send_str('{"success":true}')
        pump = _Pump(ws, interleaving)
        pumping = asyncio.get_running_loop().create_task(pump.run())
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                envelope = _decode_envelope(msg.data)
                channel_id = envelope.channel_id
                if envelope.type == "channelCreate" and envelope.endpoint == "predict":
                    pump.add(_stream(model, channel_id, envelope.creation_parameter))
                elif envelope.type == "channelCreate" and envelope.endpoint == "getOrLoad":
                    loaded = {"type": "alreadyLoaded", "info": model.info}
                    close = _frame({"type": "channelClose", "channelId": channel_id})
                    pump.write(_send_frame(channel_id, loaded) + close)
                elif envelope.type == "channelSend":
                    if _decode_cancel(envelope.message).type == "cancel":
                        pump.cancel(channel_id, model)
                elif envelope.type == "rpcCall":
                    error = {"title": f"The benchmark server has no RPC {envelope.endpoint!r}"}
                    reply = {"type": "rpcError", "callId": envelope.call_id, "error": error}
                    pump.write(_frame(reply))
        finally:
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pumping
        return ws

    app = web.Application()
    app.router.add_get("/lmstudio-greeting", _greeting)
    app.router.add_get("/{namespace}", socket)
    return app

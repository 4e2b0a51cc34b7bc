"""The benchmark's websocket firehose: LM Studio's predict traffic at a cost near zero per fragment.

Not the simulator: a server that does only what scenarios 1-4 need, so that its own work per
fragment is one ``bytes`` multiplication. Every namespace socket authenticates anyone;
``getOrLoad`` answers ``alreadyLoaded`` for any model; ``predict`` streams ``N`` fragments
(``N`` = the request's ``maxPredictedTokens``, else 100), the ``i``-th (from 0) carrying a
space, the prompt's text, a space and ``i`` in 7 digits (``" p3 0000041"``), so a client
running many predictions can check that every fragment reached its own prediction, in order.
A prediction's frames (two ``promptProcessingProgress``, the fragment up to its number,
``success``, ``channelClose``) are encoded once, when its ``channelCreate`` arrives; each
position's number and the rest of its frame are encoded once per process, so a write is a few
C-level ``bytes`` joins (measured: 0.1-0.6 µs of server CPU per fragment, 0.06-0.45 µs when
every fragment was the same bytes, against the floor's ~2.3-3 µs).

One pump per socket writes them, in one of two interleavings:

* ``sequential``: channels one after another (the next channel's fragments follow the
  previous channel's end in the same write), ``_BATCH_BYTES`` per ``transport.write``;
* ``interleaved``: the fragments of every open channel interleaved frame by frame (one fragment
  of each channel, then the next of each, ...), again ``_BATCH_BYTES`` per write. The pump
  starts as soon as the first channel opens, so when a client opens many predictions at once
  the first few may be written whole before the others open (in scenario 2, ~6 of 100).

Frames are written with ``transport.write`` under the socket's normal flow control (the pump
waits while the transport is paused), and always as whole frames from the event loop thread,
so frames never interleave mid-frame. The pump yields between writes so that new channels and
cancels are taken in.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
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
# Digits of a fragment's position: fixed, so every fragment frame of a prediction has the same
# length (one websocket header) and the number is the last thing before a fixed frame end.
_WIDTH: Final = 7
_MAX_FRAGMENTS: Final = 10**_WIDTH
# Positions encoded when the server starts: the benchmark's longest prediction (scenario 1).
_PREBUILT: Final = 100_000


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
    # Positions have _WIDTH digits; a benchmark never asks for more.
    return min(count, _MAX_FRAGMENTS), limited


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


class _Numbers:
    """Every fragment frame's end from its position on (``b"0000041" + the fixed rest``).

    Encoded once per process and shared by all predictions: a prediction's fragment ``i`` is
    its own frame start (websocket header, envelope, content up to the number) + ``ends[i]``.
    """

    def __init__(self) -> None:
        sample = _encode(_fragment_send(0, "x" + "0" * _WIDTH))
        self.rest = sample[sample.rindex(b"0" * _WIDTH) + _WIDTH :]
        self.ends: list[bytes] = []
        # Encoded up front, not while a measured run waits for them (~0.1 s, ~10 MB).
        self.upto(_PREBUILT)

    def upto(self, count: int) -> list[bytes]:
        """The ends of positions ``0 .. count - 1`` at least."""
        ends = self.ends
        if len(ends) < count:
            ends.extend(b"%0*d" % (_WIDTH, i) + self.rest for i in range(len(ends), count))
        return ends


class _Stream:
    """One prediction's pre-encoded frames and how many fragments it still has to send."""

    __slots__ = ("channel_id", "count", "frame_size", "head", "remaining", "start", "tail")

    def __init__(
        self, channel_id: int, head: bytes, start: bytes, size: int, count: int, tail: bytes
    ) -> None:
        self.channel_id = channel_id
        self.head = head  # the progress frames, until written
        self.start = start  # each fragment frame up to its number
        self.frame_size = size
        self.count = self.remaining = count
        self.tail = tail

    def frames(self, ends: list[bytes], n: int) -> Iterable[bytes]:
        """The next ``n`` fragment frames (as pieces to join), counted as sent."""
        sent = self.count - self.remaining
        self.remaining -= n
        # start + e0, start + e1, ...: one join, no bytes object per fragment.
        return [self.start, self.start.join(ends[sent : sent + n])] if n else []


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
        _NUMBERS.upto(stream.count)  # a no-op but for predictions longer than _PREBUILT
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
                data = self._sequential_batch(streams)
            self.write(data)
            if self._protocol._paused:
                await self._protocol._drain_helper()
            else:
                await asyncio.sleep(0)

    def _sequential_batch(self, streams: list[_Stream]) -> bytes:
        """Channel after channel, as many as fill one write (at least one fragment)."""
        parts: list[bytes] = []
        budget = _BATCH_BYTES
        for stream in streams:
            count = min(stream.remaining, max(1, budget // stream.frame_size))
            frames = stream.frames(_NUMBERS.ends, count)
            parts += [*self._heads([stream]), *frames, *self._tails([stream])]
            budget -= count * stream.frame_size
            if budget < stream.frame_size:
                break
        return b"".join(parts)

    def _interleaved_batch(self, streams: list[_Stream]) -> bytes:
        """Whole rounds: the next fragment of every open channel, in channel order."""
        # With 1,000 channels a write holds about one round, so this runs about once per
        # fragment of each channel: per channel only C-level map()s, no Python-level calls.
        size = sum(map(_frame_size, streams))
        count = min(min(map(_remaining, streams)), max(1, _BATCH_BYTES // size))
        ends = _NUMBERS.ends
        positions = [stream.count - stream.remaining for stream in streams]
        # Each channel's frame start, then its fragment's number and frame end: one round.
        parts = [b""] * (2 * len(streams))
        parts[0::2] = map(_start, streams)
        rounds: list[bytes] = []
        for _ in range(count):
            parts[1::2] = list(map(ends.__getitem__, positions))
            rounds.append(b"".join(parts))
            positions = list(map(_NEXT, positions))
        for stream in streams:
            stream.remaining -= count
        return b"".join([*self._heads(streams), *rounds, *self._tails(streams)])

    def _heads(self, streams: list[_Stream]) -> list[bytes]:
        fresh = [stream for stream in streams if stream.head]
        heads = [stream.head for stream in fresh]
        for stream in fresh:
            stream.head = b""
        return heads

    def _tails(self, streams: list[_Stream]) -> list[bytes]:
        """The end frames of the streams with nothing left to send, which leave the pump."""
        done = [stream for stream in streams if stream.remaining <= 0]
        for stream in done:
            del self._open[stream.channel_id]
        return [stream.tail for stream in done]


def _frame(message: Any) -> bytes:
    return ws_text_frame(_encode(message))


def _send_frame(channel_id: int, packet: Any) -> bytes:
    return _frame({"type": "channelSend", "channelId": channel_id, "message": packet})


def _fragment_send(channel_id: int, content: str) -> dict[str, Any]:
    fragment = {
        "content": content,
        "tokensCount": 1,
        "containsDrafted": False,
        "reasoningType": "none",
        "isStructural": False,
    }
    message = {"type": "fragment", "fragment": fragment}
    return {"type": "channelSend", "channelId": channel_id, "message": message}


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
    # Encoded with a placeholder number, then cut before it: the rest comes from _NUMBERS.
    payload = _encode(_fragment_send(channel_id, f" {_tag(predict)} {'0' * _WIDTH}"))
    end = _WIDTH + len(_NUMBERS.rest)
    assert payload[-end:] == b"0" * _WIDTH + _NUMBERS.rest
    frame = ws_text_frame(payload)
    head = _progress(channel_id, 0) + _progress(channel_id, 1)
    reason = "maxPredictedTokensReached" if limited else "eosFound"
    tail = _end(model, channel_id, reason, count)
    return _Stream(channel_id, head, frame[:-end], len(frame), count, tail)


_NUMBERS: Final = _Numbers()
_frame_size: Final = operator.attrgetter("frame_size")
_remaining: Final = operator.attrgetter("remaining")
_start: Final = operator.attrgetter("start")
_NEXT: Final = (1).__add__


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

"""Property-based fuzzing of the receive path: hostile frames from the server never escape the
receive loop as anything but an LMStudioError on the affected operation, and never hang it.

A Connection runs against a fake server that interleaves arbitrary and mutated frames with a
valid prediction and a valid RPC answer: over the in-memory transport, and over a real
loopback websocket with the frames as raw bytes (what aiohttp hands over unchecked, e.g.
invalid UTF-8, decides what reaches the decoders).
"""

from __future__ import annotations

import contextlib
import functools
import json
from typing import Any

import aiohttp
import anyio
import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmstudio_async import LMStudioError
from lmstudio_async._mux import Connection
from lmstudio_async._prediction import PredictionCallbacks, PredictionStream
from lmstudio_async._protocol.auth import Credentials
from lmstudio_async._transport import Transport, TransportClosed
from lmstudio_async._transport.memory import memory_transport_pair
from lmstudio_async._transport.websocket import WebSocketTransport
from reliability.raw_server import SUCCESS, ServerEnd, serve_raw

CREDENTIALS = Credentials("guest:fuzz", "secret", from_token=False)
WORDS = ["alpha ", "beta ", "gamma ", "delta"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)

ENVELOPE_TYPES = [
    "channelSend",
    "channelClose",
    "channelError",
    "channelAck",
    "rpcResult",
    "rpcError",
    "communicationWarning",
    "keepAliveAck",
    "signal",
    "someFutureEnvelope",
]
MESSAGE_TYPES = [
    "fragment",
    "success",
    "promptProcessingProgress",
    "toolCallGenerationStart",
    "toolCallGenerationEnd",
    "toolCallGenerationFailed",
    "aFutureMessage",
]


@st.composite
def mutated_envelopes(draw: st.DrawFn, channel_id: int) -> bytes:
    """A plausible envelope with some part of it replaced by something hostile."""
    kind = draw(st.sampled_from(ENVELOPE_TYPES))
    # Mostly other channels and calls: hostile frames on ours may legitimately fail it.
    target = draw(
        st.sampled_from([channel_id + 1, 999, -1, 0]) | st.integers() | st.just(channel_id)
    )
    envelope: dict[str, object] = {"type": kind, "channelId": target, "callId": target}
    if kind == "channelSend":
        message: dict[str, object] = {"type": draw(st.sampled_from(MESSAGE_TYPES))}
        if draw(st.booleans()):
            message["fragment"] = draw(json_values)
        if draw(st.booleans()):
            message[draw(st.text(max_size=10))] = draw(json_values)
        envelope["message"] = message
    elif kind in ("channelError", "rpcError"):
        envelope["error"] = draw(json_values)
    elif kind == "rpcResult":
        envelope["result"] = draw(json_values)
    elif kind == "communicationWarning":
        envelope["warning"] = draw(json_values | st.just("endpointName: predict"))
        envelope["kind"] = draw(st.sampled_from(["channelEndpointUnknown", "x"]) | json_values)
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from([*envelope.keys(), "extra"]))
        action = draw(st.sampled_from(["drop", "replace"]))
        if action == "drop":
            envelope.pop(key, None)
        else:
            envelope[key] = draw(json_values)
    data = json.dumps(envelope).encode()
    if draw(st.integers(0, 9)) == 0:
        cut = draw(st.integers(0, len(data)))
        data = data[:cut]
    return data


def hostile_frames(channel_id: int) -> st.SearchStrategy[bytes]:
    return (
        st.binary(max_size=40)
        | st.text(max_size=40).map(str.encode)
        | json_values.map(lambda v: json.dumps(v).encode())
        | mutated_envelopes(channel_id)
    )


async def _exchange(
    junk_plan: list[tuple[int, list[bytes]]],
    *,
    junk_is_unparseable: bool = False,
    over: str = "memory",
) -> None:
    if over == "websocket":

        async def serve(end: ServerEnd) -> None:
            await _serve(end, junk_plan)

        async with serve_raw(serve) as server, aiohttp.ClientSession() as session:

            async def connect(url: str) -> Transport:
                return await WebSocketTransport.connect(session, f"ws://{server.base_url}/llm")

            await _drive(connect, junk_is_unparseable)
        return
    client_end, server_end = memory_transport_pair()

    async def factory(url: str) -> Transport:
        return client_end

    async def serve_memory() -> None:
        with contextlib.suppress(TransportClosed):  # the client hung up: the exchange is over
            await _serve(server_end, junk_plan)

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve_memory)
        await _drive(factory, junk_is_unparseable)
        tg.cancel_scope.cancel()
    await server_end.aclose()


async def _drive(factory: Any, junk_is_unparseable: bool) -> None:
    connection = Connection(
        namespace="llm", url="ws://memory/llm", credentials=CREDENTIALS, transport_factory=factory
    )
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(connection.run)
            stream: PredictionStream[str] = PredictionStream(
                open_channel=_opener(connection), callbacks=PredictionCallbacks()
            )
            if junk_is_unparseable:
                # Frames that are not protocol messages are skipped: the prediction is intact.
                assert (await stream.result()).content == "".join(WORDS)
            else:
                try:
                    result = await stream.result()
                except LMStudioError:
                    pass  # hostile data aimed at our channel may fail it, with our error type
                else:
                    # Text may be mended (U+FFFD) but is never a codec error or unencodable.
                    result.content.encode("utf-8")
            assert connection.alive, "hostile frames never take the connection down"
            # A hostile warning may reject every pending RPC: then with our error type.
            with contextlib.suppress(LMStudioError):
                await connection.call("version")
            tg.cancel_scope.cancel()


def _opener(connection: Connection) -> Any:
    async def open_channel() -> Any:
        return await connection.open_prediction_channel("predict", {"history": {}})

    return open_channel


async def _serve(end: Any, junk_plan: list[tuple[int, list[bytes]]]) -> None:
    await end.receive()  # authentication
    await end.send(b'{"success": true}')
    create = json.loads(await end.receive())
    channel_id = create["channelId"]
    junk = dict(junk_plan)

    async def send_junk(slot: int) -> None:
        for frame in junk.get(slot, []):
            await end.send(frame)

    valid: list[dict[str, Any]] = [
        {"type": "fragment", "fragment": {"content": w, "tokensCount": 1}} for w in WORDS
    ]
    valid.append(SUCCESS)
    for slot, message in enumerate(valid):
        await send_junk(slot)
        envelope = {"type": "channelSend", "channelId": channel_id, "message": message}
        await end.send(msgspec.json.encode(envelope))
    await end.send(msgspec.json.encode({"type": "channelClose", "channelId": channel_id}))
    await send_junk(len(valid))
    while True:
        frame = json.loads(await end.receive())
        if frame.get("type") == "rpcCall":
            reply = {"type": "rpcResult", "callId": frame["callId"], "result": {"v": 1}}
            await end.send(msgspec.json.encode(reply))


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(
        st.tuples(st.integers(0, len(WORDS) + 1), st.lists(hostile_frames(1), max_size=4)),
        max_size=4,
    )
)
def test_hostile_frames_never_escape_the_receive_loop(
    junk_plan: list[tuple[int, list[bytes]]],
) -> None:
    anyio.run(_exchange, junk_plan)


# Text-level hostility only the byte path shows: invalid UTF-8 and lone surrogate escapes,
# spliced into otherwise valid frames, including our own channel's fragments.
odd_text = st.sampled_from(
    [b"\xff", b"\xc3", b"\xed\xa0\xbd", b"\\ud83d", b"\\ude00", b"\\ud83d\\ude00", b"\x00"]
)


@st.composite
def odd_text_frames(draw: st.DrawFn) -> bytes:
    frame = draw(mutated_envelopes(1) | st.just(b'{"type":"rpcResult","callId":2,"result":"x"}'))
    if draw(st.booleans()):
        word = draw(st.sampled_from(WORDS)).strip()
        frame = (
            b'{"type":"channelSend","channelId":1,"message":{"type":"fragment",'
            b'"fragment":{"content":"' + word.encode() + b'","tokensCount":1}}}'
        )
    at = draw(st.integers(0, len(frame)))
    return frame[:at] + draw(odd_text) + frame[at:]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(WORDS) + 1),
            st.lists(hostile_frames(1) | odd_text_frames(), max_size=4),
        ),
        max_size=4,
    )
)
def test_hostile_bytes_over_a_real_websocket(junk_plan: list[tuple[int, list[bytes]]]) -> None:
    anyio.run(functools.partial(_exchange, junk_plan, over="websocket"))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.binary(min_size=1, max_size=200).filter(lambda b: not _is_json_object(b)),
        min_size=1,
        max_size=6,
    )
)
def test_random_bytes_between_every_packet(frames: list[bytes]) -> None:
    plan = [(slot, frames) for slot in range(len(WORDS) + 2)]
    anyio.run(functools.partial(_exchange, plan, junk_is_unparseable=True))


def _is_json_object(data: bytes) -> bool:
    """Only a JSON object could be an envelope; anything else can never touch a channel."""
    try:
        return isinstance(json.loads(data), dict)
    except ValueError:
        return False

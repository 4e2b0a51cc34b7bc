"""Property-based fuzzing of the receive path: hostile frames from the server never escape the
receive loop as anything but an LMStudioError on the affected operation, and never hang it.

A Connection runs over the in-memory transport against a fake server that interleaves
arbitrary and mutated frames with a valid prediction and a valid RPC answer.
"""

from __future__ import annotations

import contextlib
import functools
import json
from typing import Any

import anyio
import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmstudio_async import LMStudioError
from lmstudio_async._mux import Connection
from lmstudio_async._prediction import PredictionCallbacks, PredictionStream
from lmstudio_async._protocol.auth import Credentials
from lmstudio_async._transport import Transport
from lmstudio_async._transport.memory import MemoryTransport, memory_transport_pair

CREDENTIALS = Credentials("guest:fuzz", "secret", from_token=False)
WORDS = ["alpha ", "beta ", "gamma ", "delta"]
SUCCESS: dict[str, Any] = {
    "type": "success",
    "stats": {"stopReason": "eosFound", "predictedTokensCount": 4},
    "modelInfo": {
        "type": "llm",
        "modelKey": "qwen2.5-7b-instruct",
        "format": "gguf",
        "displayName": "Qwen2.5 7B Instruct",
        "publisher": "lmstudio-community",
        "path": "lmstudio-community/Qwen2.5-7B-Instruct-GGUF/Qwen2.5-7B-Instruct-Q4_K_M.gguf",
        "sizeBytes": 4683073952,
        "architecture": "qwen2",
        "paramsString": "7B",
        "vision": False,
        "trainedForToolUse": True,
        "maxContextLength": 32768,
        "identifier": "qwen2.5-7b-instruct",
        "instanceReference": "inst-1",
        "ttlMs": None,
        "lastUsedTime": None,
        "contextLength": 4096,
    },
}

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
    junk_plan: list[tuple[int, list[bytes]]], *, junk_is_unparseable: bool = False
) -> None:
    client_end, server_end = memory_transport_pair()

    async def factory(url: str) -> Transport:
        return client_end

    connection = Connection(
        namespace="llm", url="ws://memory/llm", credentials=CREDENTIALS, transport_factory=factory
    )
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_serve, server_end, junk_plan)
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
                    assert result.content == "".join(WORDS)
            assert connection.alive, "hostile frames never take the connection down"
            # A hostile warning may reject every pending RPC: then with our error type.
            with contextlib.suppress(LMStudioError):
                await connection.call("version")
            tg.cancel_scope.cancel()
    await server_end.aclose()


def _opener(connection: Connection) -> Any:
    async def open_channel() -> Any:
        return await connection.open_prediction_channel("predict", {"history": {}})

    return open_channel


async def _serve(end: MemoryTransport, junk_plan: list[tuple[int, list[bytes]]]) -> None:
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

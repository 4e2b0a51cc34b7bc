"""The receive loop's one-pass decode of fragments, and the frames it must leave alone."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec
import pytest

from lmstudio_async._mux import Channel, Connection
from lmstudio_async._prediction._callbacks import PredictionCallbacks
from lmstudio_async._prediction._stream import PredictionStream
from lmstudio_async._protocol.auth import Credentials
from lmstudio_async._protocol.packets import FragmentPacket
from lmstudio_async._transport import Transport
from lmstudio_async._transport.memory import MemoryTransport, memory_transport_pair
from lmstudio_async.testing._catalog import Instance, default_catalog
from lmstudio_async.types.prediction import PredictionFragment

pytestmark = pytest.mark.anyio


def _fragment(content: str, reasoning_type: str = "none") -> dict[str, Any]:
    return {
        "type": "fragment",
        "fragment": {
            "content": content,
            "tokensCount": 1,
            "containsDrafted": False,
            "reasoningType": reasoning_type,
            "isStructural": False,
        },
    }


def _success() -> dict[str, Any]:
    spec = default_catalog()[0]
    instance = Instance(
        spec=spec, identifier=spec.model_key, instance_reference="i1", context_length=4096
    )
    return {
        "type": "success",
        "stats": {"stopReason": "eosFound", "predictedTokensCount": 4},
        "modelInfo": instance.info(),
        "loadModelConfig": instance.load_config(),
        "predictionConfig": {"fields": []},
    }


@asynccontextmanager
async def _connected() -> AsyncIterator[tuple[Connection, MemoryTransport]]:
    client_end, server_end = memory_transport_pair()

    async def factory(url: str) -> Transport:
        return client_end

    async def authenticate() -> None:
        await server_end.receive()
        await server_end.send(b'{"success": true}')

    connection = Connection(
        namespace="llm",
        url="ws://memory/llm",
        credentials=Credentials("guest:test", "secret", from_token=False),
        transport_factory=factory,
        auth_timeout=10.0,
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(authenticate)
            await tg.start(connection.run)
            yield connection, server_end
            tg.cancel_scope.cancel()
    finally:
        await server_end.aclose()


async def _send(server: MemoryTransport, channel_id: int, packet: Any) -> None:
    frame = {"type": "channelSend", "channelId": channel_id, "message": packet}
    await server.send(json.dumps(frame).encode())


async def test_every_fragment_reaches_the_prediction_in_order_whichever_decode_it_takes() -> None:
    async with _connected() as (connection, server):
        opened: list[Channel] = []

        async def open_channel() -> Channel:
            channel = await connection.open_prediction_channel("predict", {})
            opened.append(channel)
            return channel

        prediction: PredictionStream[str] = PredictionStream(
            open_channel=open_channel, callbacks=PredictionCallbacks()
        )
        contents: list[str] = []
        async with anyio.create_task_group() as tg:

            async def read() -> None:
                contents.extend([fragment.content async for fragment in prediction])

            tg.start_soon(read)
            channel_id = json.loads(await server.receive())["channelId"]
            await _send(server, channel_id, _fragment("a"))
            # A reasoning type newer than this client fails the one-pass decode: the general
            # path and its lenient packet decode take it, in its place in the stream.
            await _send(server, channel_id, _fragment("b", "someFutureKind"))
            await _send(server, channel_id, {"type": "fragment", "fragment": "c"})  # pre-2025
            await _send(server, channel_id, _fragment("d"))
            await _send(server, channel_id, _success())
            await server.send(
                json.dumps({"type": "channelClose", "channelId": channel_id}).encode()
            )
        result = await prediction.result()
    assert contents == ["a", "b", "c", "d"]
    assert result.content == "abcd"
    assert result.stats.stop_reason == "eosFound"


async def test_a_fragment_on_a_channel_that_is_not_a_prediction_stays_raw() -> None:
    # Only prediction channels get decoded fragments; any other consumer decodes its packets
    # itself and must see this one as an unknown packet of its endpoint, not a foreign object.
    async with _connected() as (connection, server):
        channel = connection.open_channel("getOrLoad", {"identifier": "x"})
        await server.receive()
        await _send(server, channel.id, _fragment("stray"))
        packet = await channel.next()
    assert isinstance(packet, msgspec.Raw)
    assert msgspec.json.decode(packet) == _fragment("stray")


async def test_a_prediction_channel_receives_fragments_already_decoded_in_one_pass() -> None:
    # The one-pass decode is what the throughput claims rest on: a well-formed fragment reaches
    # a prediction channel as a FragmentPacket, decoded together with its envelope. Should the
    # fast path stop matching, it would arrive raw (the general path) and only be slower, so
    # the content checks above would not notice.
    async with _connected() as (connection, server):
        channel = await connection.open_prediction_channel("predict", {})
        await server.receive()
        await _send(server, channel.id, _fragment("fast"))
        # Not a fragment this client knows: the general path, raw, in its place.
        await _send(server, channel.id, _fragment("slow", "someFutureKind"))
        fast, slow = await channel.next(), await channel.next()
    assert type(fast) is FragmentPacket
    assert isinstance(fast.fragment, PredictionFragment)
    assert fast.fragment.content == "fast"
    assert isinstance(slow, msgspec.Raw)

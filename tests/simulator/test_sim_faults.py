"""Every fault the simulator can inject, observed from a raw client."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import anyio
import pytest
from sim_helpers import RawClient, predict_parameter, raw_client

from lmstudio_async.testing import Faults, ScriptedReply, Simulator

pytestmark = pytest.mark.anyio

LLM = "qwen2.5-7b-instruct"
TEN_WORDS = "a b c d e f g h i j"


def _script(sim: Simulator, faults: Faults, **kwargs: Any) -> None:
    sim.script(LLM, ScriptedReply(content=TEN_WORDS, faults=faults, **kwargs))


async def _frames_until_end(client: RawClient, channel_id: int) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while True:
        frame = await client.recv()
        frames.append(frame)
        if frame.get("channelId") == channel_id and frame["type"] in (
            "channelClose",
            "channelError",
        ):
            return frames


async def _read_until_closed(client: RawClient) -> list[dict[str, Any]]:
    """Every frame until the socket ends (the server dropped it)."""
    frames: list[dict[str, Any]] = []
    with anyio.fail_after(2):
        while True:
            try:
                frames.append(await client.recv())
            except ConnectionError:
                return frames


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _fragments(frames: list[dict[str, Any]], channel_id: int) -> int:
    return sum(
        1
        for f in frames
        if f.get("channelId") == channel_id
        and f["type"] == "channelSend"
        and f["message"]["type"] == "fragment"
    )


async def test_delay_before_first_fragment(simulator: Simulator) -> None:
    _script(simulator, Faults(delay_before_first_fragment=0.05))
    async with raw_client(simulator) as client:
        packets, _ = await client.channel_packets(
            await client.create_channel("predict", predict_parameter("x"))
        )
    assert packets[-1]["stats"]["timeToFirstTokenSec"] >= 0.05


async def test_stall_then_disconnect_cleans_up(simulator: Simulator) -> None:
    _script(simulator, Faults(stall_after_fragments=2))
    async with raw_client(simulator) as client:
        channel = await client.create_channel("predict", predict_parameter("x"))
        await simulator.wait_for(
            lambda: bool(simulator.predictions) and simulator.predictions[-1].fragments_sent == 2
        )
        assert simulator.open_channel_count() == 1
        assert simulator.predictions[-1].cancel_received is False
        del channel
    await simulator.wait_for(lambda: simulator.open_channel_count() == 0)
    assert simulator.predictions[-1].status == "disconnected"
    assert simulator.connection_count() == 0


async def test_drop_after_fragments_closes_the_socket(simulator: Simulator) -> None:
    _script(simulator, Faults(drop_after_fragments=3))
    async with raw_client(simulator) as client:
        channel = await client.create_channel("predict", predict_parameter("x"))
        frames = await _read_until_closed(client)
    assert _fragments(frames, channel) == 3
    await simulator.wait_for(lambda: simulator.connection_count() == 0)
    assert simulator.predictions[-1].status == "disconnected"
    assert simulator.open_channel_count() == 0


async def test_channel_error_after_fragments(simulator: Simulator) -> None:
    _script(simulator, Faults(channel_error_after_fragments=4))
    async with raw_client(simulator) as client:
        channel = await client.create_channel("predict", predict_parameter("x"))
        frames = await _frames_until_end(client, channel)
    assert _fragments(frames, channel) == 4
    assert frames[-1]["type"] == "channelError"
    assert simulator.predictions[-1].status == "errored"


async def test_malformed_unknown_packet_channel_and_envelope_then_continue(
    simulator: Simulator,
) -> None:
    faults = Faults(
        malformed_json_after_fragments=1,
        unknown_packet_after_fragments=2,
        unknown_channel_after_fragments=3,
        unknown_envelope_after_fragments=4,
    )
    _script(simulator, faults)
    texts: list[str] = []
    async with raw_client(simulator) as client:
        await client.create_channel("predict", predict_parameter("x"))
        while '"channelClose"' not in (texts[-1] if texts else ""):
            texts.append(await client.recv_text())
    bad = [t for t in texts if not _is_json(t) or "simulator" in t or "987654321" in t]
    assert len(bad) == 4
    assert not _is_json(bad[0])
    assert "simulatorUnknownPacket" in bad[1]
    assert '"channelId":987654321' in bad[2]
    assert bad[3] == '{"type":"simulatorUnknownEnvelope"}'
    assert simulator.predictions[-1].status == "finished"
    assert simulator.predictions[-1].fragments_sent == 10


async def test_stall_auth_and_drop_on_auth(simulator: Simulator) -> None:
    simulator.faults = Faults(stall_auth=True)
    async with raw_client(simulator, authenticate=False) as client:
        await client.send({"authVersion": 1, "clientIdentifier": "a", "clientPasskey": "b"})
        await client.expect_silence(0.1)
    simulator.faults = Faults(drop_on_auth=True)
    async with raw_client(simulator, authenticate=False) as client:
        await client.send({"authVersion": 1, "clientIdentifier": "a", "clientPasskey": "b"})
        msg = await client.ws.receive()
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_rpc_delay_and_stall(simulator: Simulator) -> None:
    async with raw_client(simulator) as client:
        simulator.faults = Faults(rpc_delay=0.05)
        started = time.monotonic()
        await client.rpc("listLoaded")
        assert time.monotonic() - started >= 0.05
        simulator.faults = Faults(stall_rpcs=True)
        await client.send({"type": "rpcCall", "endpoint": "listLoaded", "callId": 100})
        await client.expect_silence(0.1)


async def test_per_prediction_faults_override_server_wide(simulator: Simulator) -> None:
    simulator.faults = Faults(channel_error_after_fragments=0)
    simulator.script(LLM, ScriptedReply(content="fine", faults=Faults()))
    async with raw_client(simulator) as client:
        _, end = await client.channel_packets(
            await client.create_channel("predict", predict_parameter("x"))
        )
        assert end["type"] == "channelClose"
        _, end = await client.channel_packets(
            await client.create_channel("predict", predict_parameter("x"))
        )
        assert end["type"] == "channelError"


async def test_drop_connections_mid_stream_then_serve_again(simulator: Simulator) -> None:
    simulator.script(LLM, ScriptedReply(content="w " * 100, tokens_per_second=200.0))
    async with raw_client(simulator) as client:
        await client.create_channel("predict", predict_parameter("x"))
        await simulator.wait_for(
            lambda: bool(simulator.predictions) and simulator.predictions[-1].fragments_sent >= 2
        )
        await simulator.drop_connections()
        await _read_until_closed(client)
    assert simulator.predictions[-1].status == "disconnected"
    assert simulator.open_channel_count() == 0
    assert simulator.connection_count() == 0
    async with raw_client(simulator) as client:
        assert (await client.rpc("listLoaded"))["type"] == "rpcResult"

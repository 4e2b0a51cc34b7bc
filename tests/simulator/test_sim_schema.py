"""Every frame the simulator sends to the official SDK validates against lms.json.

lms.json is one schema generation older than the newest clients (PROTOCOL.md §6 item 16),
so the newer fields are stripped before validation; endpoints it does not know are skipped.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sim_flows import broad_async_flow
from sim_helpers import LmsSchema, validate_envelope

from lmstudio_async.testing import Simulator

pytestmark = pytest.mark.anyio

# Newer endpoints share the packet schema of an older one.
_SAME_PACKETS = {"completeRawText": "predict"}


def _endpoints(frames: list[dict[str, Any]]) -> tuple[dict[int, str], dict[int, str]]:
    calls = {f["callId"]: f["endpoint"] for f in frames if f.get("type") == "rpcCall"}
    channels = {f["channelId"]: f["endpoint"] for f in frames if f.get("type") == "channelCreate"}
    return calls, channels


def _validate_namespace(
    schema: LmsSchema, sim: Simulator, namespace: str, seen: Counter[str]
) -> None:
    calls, channels = _endpoints(sim.frames_received(namespace))
    for frame in sim.frames_sent(namespace):
        validate_envelope(frame)
        kind = frame.get("type")
        if kind == "rpcResult" and "result" in frame:
            name = f"{namespace}/rpc/{calls[frame['callId']]}/returns"
            if schema.has(name):
                schema.validate(name, frame["result"])
                seen[name] += 1
        elif kind == "channelSend":
            endpoint = channels[frame["channelId"]]
            name = f"{namespace}/channel/{_SAME_PACKETS.get(endpoint, endpoint)}/toClientPacket"
            if schema.has(name):
                schema.validate(name, frame["message"])
                seen[f"{name}:{frame['message']['type']}"] += 1
        elif kind in ("rpcError", "channelError"):
            schema.validate("serializedLMSExtendedError", frame["error"])
            if "displayData" in frame["error"]:
                schema.validate("errorDisplayData", frame["error"]["displayData"])
            seen[kind] += 1


async def test_every_packet_sent_to_the_official_sdk_validates(
    simulator: Simulator, lms_schema: dict[str, Any]
) -> None:
    await broad_async_flow(simulator)
    schema = LmsSchema(lms_schema)
    seen: Counter[str] = Counter()
    for namespace in ("llm", "embedding", "system", "files", "repository"):
        _validate_namespace(schema, simulator, namespace, seen)
    # The flow must actually have exercised the interesting packets.
    for expected in (
        "llm/rpc/listLoaded/returns",
        "llm/rpc/getModelInfo/returns",
        "llm/rpc/getLoadConfig/returns",
        "llm/rpc/tokenize/returns",
        "llm/rpc/countTokens/returns",
        "llm/channel/predict/toClientPacket:fragment",
        "llm/channel/predict/toClientPacket:promptProcessingProgress",
        "llm/channel/predict/toClientPacket:toolCallGenerationEnd",
        "llm/channel/predict/toClientPacket:success",
        "llm/channel/getOrLoad/toClientPacket:alreadyLoaded",
        "llm/channel/loadModel/toClientPacket:resolved",
        "llm/channel/loadModel/toClientPacket:progress",
        "llm/channel/loadModel/toClientPacket:success",
        "embedding/rpc/embedString/returns",
        "embedding/rpc/listLoaded/returns",
        "system/rpc/listDownloadedModels/returns",
    ):
        assert seen[expected], f"flow never produced {expected}"


async def test_error_packets_validate(simulator: Simulator, lms_schema: dict[str, Any]) -> None:
    from sim_helpers import llm_query, predict_parameter, raw_client

    async with raw_client(simulator) as client:
        await client.rpc("getModelInfo", {"specifier": llm_query("gone"), "throwIfNotFound": True})
        channel = await client.create_channel("predict", predict_parameter("hi", model="gone"))
        await client.channel_packets(channel)
        channel = await client.create_channel(
            "getOrLoad",
            {"identifier": "no-such-key", "loadConfigStack": {"layers": []}},
        )
        await client.channel_packets(channel)
    schema = LmsSchema(lms_schema)
    seen: Counter[str] = Counter()
    _validate_namespace(schema, simulator, "llm", seen)
    assert seen["rpcError"] == 1
    assert seen["channelError"] == 2

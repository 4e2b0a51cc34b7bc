"""``/runtime`` and ``/plugins`` answer every request (a 2.0 client must never wait forever)."""

from __future__ import annotations

import pytest
from sim_helpers import raw_client

from lmstudio_async.testing import Simulator

pytestmark = pytest.mark.anyio


async def test_runtime_reports_one_engine(simulator: Simulator) -> None:
    async with raw_client(simulator, namespace="runtime") as client:
        engines = (await client.rpc("listEngines"))["result"]
        assert [e["name"] for e in engines] == ["llama.cpp-simulated"]
        selections = (await client.rpc("getEngineSelections"))["result"]
        assert selections == {
            "json": [["GGUF", {"name": "llama.cpp-simulated", "version": "1.0.0"}]],
            "meta": {"values": ["map"]},
        }
        survey = (await client.rpc("surveyHardware"))["result"]
        assert survey["status"] == "ok"
        assert survey["engines"][0]["compatibility"] == {"status": "compatible"}
        found = await client.rpc(
            "searchRuntimeExtensions", {"query": "cuda", "includeIncompatible": False}
        )
        assert found["result"] == {"extensions": []}
        selected = await client.rpc(
            "selectEngine",
            {
                "engine": {"name": "llama.cpp-simulated", "version": "1.0.0"},
                "modelFormatName": "GGUF",
            },
        )
        assert selected["type"] == "rpcResult"
        removed = await client.rpc(
            "removeEngine", {"name": "llama.cpp-simulated", "version": "1.0.0"}
        )
        assert removed["type"] == "rpcError"
        channel = await client.create_channel(
            "downloadRuntimeExtension", {"name": "x", "version": "1", "updateSelections": False}
        )
        _, end = await client.channel_packets(channel)
        assert end["type"] == "channelError"
        assert "No runtime extension" in end["error"]["title"]


async def test_plugins_answer_every_request_with_an_error(simulator: Simulator) -> None:
    async with raw_client(simulator, namespace="plugins") as client:
        reply = await client.rpc("reindexPlugins")
        assert reply["type"] == "rpcError"
        assert reply["error"]["title"] == "Plugins are not available in the LM Studio simulator"
        channel = await client.create_channel("startToolUseSession", {"pluginIdentifier": "a/b"})
        _, end = await client.channel_packets(channel)
        assert end["type"] == "channelError"

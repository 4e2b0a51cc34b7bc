"""The simulator's envelope, auth and endpoint behaviour, driven by a raw websocket client."""

from __future__ import annotations

import aiohttp
import pytest
from sim_helpers import llm_query, predict_parameter, raw_client

from lmstudio_async.testing import Faults, Simulator

pytestmark = pytest.mark.anyio

TOKEN = "sk-lm-Ab12Cd34:Ef56Gh78Ij90Kl12Mn34"


async def test_greeting_and_unknown_namespace(simulator: Simulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{simulator.http_url}/lmstudio-greeting") as response:
            assert response.status == 200
            assert await response.json() == {"lmstudio": True}
        async with session.get(f"{simulator.http_url}/nope") as response:
            assert response.status == 404


async def test_frames_before_auth_are_ignored_then_auth_succeeds(simulator: Simulator) -> None:
    async with raw_client(simulator, authenticate=False) as client:
        await client.send({"type": "rpcCall", "endpoint": "listLoaded", "callId": 1})
        await client.ws.send_str("not json")
        await client.expect_silence()
        await client.send({"authVersion": 1, "clientIdentifier": "x", "clientPasskey": "y"})
        assert await client.recv() == {"success": True}
        reply = await client.rpc("listLoaded")
        assert [m["identifier"] for m in reply["result"]] == ["qwen2.5-7b-instruct"]


async def test_auth_timeout_replies_and_closes() -> None:
    async with Simulator(auth_timeout=0.05) as sim, raw_client(sim, authenticate=False) as client:
        assert await client.recv() == {"success": False, "error": "Authentication timed out"}
        msg = await client.ws.receive()
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_fcfs_passkey_is_bound_per_identifier_until_released(simulator: Simulator) -> None:
    async with raw_client(simulator, identifier="same", passkey="first"):
        async with raw_client(simulator, "system", identifier="same", passkey="first"):
            pass
        async with raw_client(simulator, authenticate=False) as intruder:
            await intruder.send(
                {"authVersion": 1, "clientIdentifier": "same", "clientPasskey": "other"}
            )
            reply = await intruder.recv()
            assert reply["success"] is False
            assert "passkey" in reply["error"]
    await simulator.wait_for(lambda: simulator.connection_count() == 0)
    # The last socket of "same" closed: the identifier is free for a new passkey.
    async with raw_client(simulator, identifier="same", passkey="other"):
        pass


async def test_token_mode_accepts_token_and_rejects_guests() -> None:
    async with Simulator(api_token=TOKEN) as sim:
        async with raw_client(sim, identifier="Ab12Cd34", passkey="Ef56Gh78Ij90Kl12Mn34"):
            pass
        async with raw_client(sim, authenticate=False) as guest:
            await guest.send({"authVersion": 1, "clientIdentifier": "g", "clientPasskey": "p"})
            reply = await guest.recv()
            assert reply["success"] is False
            assert isinstance(reply["error"], str)
            msg = await guest.ws.receive()
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_keep_alive_and_void_rpc_results(simulator: Simulator) -> None:
    async with raw_client(simulator) as client:
        await client.send({"type": "keepAlive"})
        assert await client.recv() == {"type": "keepAliveAck"}
        info = await client.rpc(
            "getModelInfo", {"specifier": llm_query("gone"), "throwIfNotFound": False}
        )
        assert info == {"type": "rpcResult", "callId": info["callId"]}


async def test_warnings_for_bad_requests_are_capped_at_five(simulator: Simulator) -> None:
    async with raw_client(simulator) as client:
        await client.send({"type": "rpcCall", "endpoint": "nope", "callId": 1})
        assert (await client.recv())["kind"] == "rpcEndpointUnknown"
        await client.send(
            {"type": "rpcCall", "endpoint": "listLoaded", "callId": 2, "parameter": {}}
        )
        assert (await client.recv())["kind"] == "rpcParameterTypeError"
        await client.send({"type": "channelCreate", "endpoint": "nope", "channelId": 3})
        assert (await client.recv())["kind"] == "channelEndpointUnknown"
        bad_layer = predict_parameter("hi")
        bad_layer["predictionConfigStack"]["layers"][0]["layerName"] = "bogus"
        await client.create_channel("predict", bad_layer)
        assert (await client.recv())["kind"] == "channelCreationParameterTypeError"
        await client.send({"type": "channelSend", "channelId": 99, "message": {"type": "cancel"}})
        assert (await client.recv())["kind"] == "channelUnknown"
        await client.send({"type": "rpcCall", "endpoint": "nope", "callId": 6})
        await client.expect_silence()
        # Nothing broke: the connection still serves.
        assert (await client.rpc("listLoaded"))["type"] == "rpcResult"


async def test_ttl_zero_and_duplicate_channel_ids_are_rejected(simulator: Simulator) -> None:
    async with raw_client(simulator) as client:
        load = {"modelKey": "google/gemma-3-4b", "ttlMs": 0, "loadConfigStack": {"layers": []}}
        await client.create_channel("loadModel", load)
        assert (await client.recv())["kind"] == "channelCreationParameterTypeError"
        param = predict_parameter("hello")
        param["history"]["messages"][0]["content"][0]["text"] = "w " * 5
        await client.send(
            {
                "type": "channelCreate",
                "endpoint": "predict",
                "channelId": 50,
                "creationParameter": param,
            }
        )
        simulator.faults = Faults(stall_after_fragments=1)
        await client.send(
            {
                "type": "channelCreate",
                "endpoint": "predict",
                "channelId": 50,
                "creationParameter": param,
            }
        )
        # Wait until the duplicate is refused while the first is stalled.
        while True:
            frame = await client.recv()
            if frame["type"] == "communicationWarning":
                assert frame["kind"] == "channelAlreadyOpen"
                break
        await client.send({"type": "channelSend", "channelId": 50, "message": {"type": "cancel"}})
        packets, end = await client.channel_packets(50)
        assert end["type"] == "channelClose"
        assert packets[-1]["stats"]["stopReason"] == "userStopped"


async def test_model_errors_carry_display_data(simulator: Simulator) -> None:
    async with raw_client(simulator) as client:
        reply = await client.rpc(
            "getModelInfo", {"specifier": llm_query("gone"), "throwIfNotFound": True}
        )
        assert reply["type"] == "rpcError"
        assert reply["error"]["displayData"]["code"] == "generic.noModelMatchingQuery"
        assert reply["error"]["displayData"]["loadedModelsSample"] == ["qwen2.5-7b-instruct"]

        channel = await client.create_channel("predict", predict_parameter("hi", model="gone"))
        _, end = await client.channel_packets(channel)
        data = end["error"]["displayData"]
        assert data["code"] == "generic.noModelMatchingQuery"
        assert data["query"] == {"identifier": "gone"}
        assert data["totalLoadedModels"] == 1

        embedder = "text-embedding-nomic-embed-text-v1.5"
        channel = await client.create_channel("predict", predict_parameter("hi", model=embedder))
        _, end = await client.channel_packets(channel)
        assert end["error"]["displayData"]["code"] == "generic.domainMismatch"

        param = predict_parameter("hi")
        param["fuzzyPresetIdentifier"] = "missing"
        channel = await client.create_channel("predict", param)
        _, end = await client.channel_packets(channel)
        assert end["error"]["displayData"]["code"] == "generic.presetNotFound"

        load = {"modelKey": "no/such", "loadConfigStack": {"layers": []}}
        channel = await client.create_channel("loadModel", load)
        _, end = await client.channel_packets(channel)
        assert end["error"]["displayData"]["code"] == "generic.pathNotFound"


async def test_load_identifier_collision_and_cancel(simulator: Simulator) -> None:
    async with raw_client(simulator) as client:
        taken = {
            "modelKey": "google/gemma-3-4b",
            "identifier": "qwen2.5-7b-instruct",
            "loadConfigStack": {"layers": []},
        }
        channel = await client.create_channel("loadModel", taken)
        _, end = await client.channel_packets(channel)
        assert end["type"] == "channelError"

        load = {"modelKey": "google/gemma-3-4b", "loadConfigStack": {"layers": []}}
        channel = await client.create_channel("loadModel", load)
        first = await client.recv()
        assert first["message"]["type"] == "resolved"
        await client.send(
            {"type": "channelSend", "channelId": channel, "message": {"type": "cancel"}}
        )
        _, end = await client.channel_packets(channel)
        assert end["type"] == "channelError"
        assert "cancel" in end["error"]["title"]
    assert simulator.loaded_identifiers() == [
        "qwen2.5-7b-instruct",
        "text-embedding-nomic-embed-text-v1.5",
    ]


async def test_get_or_load_loads_then_reports_already_loaded(simulator: Simulator) -> None:
    async with raw_client(simulator) as client:
        param = {"identifier": "google/gemma-3-4b", "loadConfigStack": {"layers": []}}
        packets, end = await client.channel_packets(await client.create_channel("getOrLoad", param))
        kinds = [p["type"] for p in packets]
        assert kinds[0] == "startLoading"
        assert kinds[-1] == "loadSuccess"
        assert "loadProgress" in kinds
        assert end["type"] == "channelClose"
        packets, _ = await client.channel_packets(await client.create_channel("getOrLoad", param))
        assert [p["type"] for p in packets] == ["alreadyLoaded"]


async def test_predict_packets_have_every_field(simulator: Simulator) -> None:
    async with raw_client(simulator) as client:
        channel = await client.create_channel("predict", predict_parameter("one two"))
        packets, end = await client.channel_packets(channel)
    assert end == {"type": "channelClose", "channelId": channel}
    assert [p["progress"] for p in packets[:2]] == [0, 1]
    assert set(packets[0]["details"]) == {
        "cachedTokenCount",
        "totalPromptTokenCount",
        "processedPromptTokenCount",
        "unprocessedPromptTokenCount",
    }
    fragments = [p["fragment"] for p in packets if p["type"] == "fragment"]
    assert "".join(f["content"] for f in fragments) == "You said: one two"
    assert all(
        set(f) == {"content", "tokensCount", "containsDrafted", "reasoningType", "isStructural"}
        for f in fragments
    )
    success = packets[-1]
    assert success["type"] == "success"
    assert set(success["stats"]) >= {
        "stopReason",
        "tokensPerSecond",
        "numGpuLayers",
        "timeToFirstTokenSec",
        "totalTimeSec",
        "promptTokensCount",
        "predictedTokensCount",
        "totalTokensCount",
    }
    assert success["modelInfo"]["deviceIdentifier"] is None
    assert simulator.open_channel_count() == 0


async def test_complete_raw_text_and_embedding_and_system(simulator: Simulator) -> None:
    async with raw_client(simulator) as client:
        param = predict_parameter("unused")
        del param["history"]
        param["rawPrompt"] = "once upon a time"
        packets, _ = await client.channel_packets(
            await client.create_channel("completeRawText", param)
        )
        text = "".join(p["fragment"]["content"] for p in packets if p["type"] == "fragment")
        assert text == " once upon a time"
        template = await client.rpc(
            "applyPromptTemplate",
            {
                "specifier": llm_query("qwen2.5-7b-instruct"),
                "history": predict_parameter("Hi")["history"],
                "predictionConfigStack": {"layers": []},
                "opts": {},
            },
        )
        assert template["result"]["formatted"] == (
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        )
    async with raw_client(simulator, "system") as system:
        assert (await system.rpc("version"))["result"] == {"version": "0.3.30", "build": 2}
        models = (await system.rpc("listDownloadedModels"))["result"]
        assert {m["type"] for m in models} == {"llm", "embedding"}
        await system.create_channel("alive")
        await system.expect_silence()
        assert simulator.open_channel_count() == 1
    await simulator.wait_for(lambda: simulator.open_channel_count() == 0)

"""``client.llm.load`` / ``client.embedding.load`` / ``unload`` against the simulator."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import Simulator

pytestmark = pytest.mark.anyio

LLM_KEY = "google/gemma-3-4b"
EMBEDDING_KEY = "text-embedding-nomic-embed-text-v1.5"


def _created(sim: Simulator, namespace: str, endpoint: str) -> list[dict[str, Any]]:
    return [
        f
        for f in sim.frames_received(namespace)
        if f.get("type") == "channelCreate" and f.get("endpoint") == endpoint
    ]


def _channel_messages(sim: Simulator, namespace: str, channel_id: int) -> list[Any]:
    return [
        f["message"]
        for f in sim.frames_received(namespace)
        if f.get("type") == "channelSend" and f.get("channelId") == channel_id
    ]


def _load_was_cancelled(sim: Simulator, channel_id: int) -> bool:
    return any(
        f.get("type") == "channelError"
        and f.get("channelId") == channel_id
        and "was cancelled" in f["error"]["title"]
        for f in sim.frames_sent("llm")
    )


async def _settled(sim: Simulator, client: lms.LMStudioClient) -> None:
    """Both ends have forgotten every channel."""
    await sim.wait_for(lambda: sim.open_channel_count() == 0 and client._open_channel_count() == 0)


async def test_load_reports_progress_in_order_up_to_one(simulator: Simulator) -> None:
    seen: list[float] = []
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.load(LLM_KEY, on_progress=seen.append)
        assert isinstance(model, lms.LLM)
        assert model.identifier == LLM_KEY
        assert model.info.model_key == LLM_KEY
        assert seen, "no progress reported"
        assert seen[-1] == 1.0
        assert seen == sorted(seen)
        assert len(set(seen)) == len(seen)
        assert all(0.0 <= p <= 1.0 for p in seen)
        assert LLM_KEY in simulator.loaded_identifiers()
        await _settled(simulator, client)


async def test_async_progress_callback_is_awaited(simulator: Simulator) -> None:
    seen: list[float] = []

    async def on_progress(value: float) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(value)

    async with lms.LMStudioClient(simulator.base_url) as client:
        await client.embedding.load(EMBEDDING_KEY, identifier="emb-2", on_progress=on_progress)
    assert seen[-1] == 1.0
    assert seen == sorted(seen)


async def test_load_sends_identifier_ttl_and_typed_config(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.load(
            LLM_KEY,
            identifier="my-gemma",
            ttl=600,
            config=lms.LLMLoadConfig(context_length=8192, flash_attention=True),
        )
        assert model.identifier == "my-gemma"
        assert model.info.ttl_ms == 600_000
        assert model.info.context_length == 8192
        assert await model.get_context_length() == 8192
        config = await model.get_load_config()
        assert isinstance(config, lms.LLMLoadConfig)
        assert config.context_length == 8192
        assert config.flash_attention is True
    [create] = _created(simulator, "llm", "loadModel")
    parameter = create["creationParameter"]
    assert parameter["modelKey"] == LLM_KEY
    assert parameter["identifier"] == "my-gemma"
    assert parameter["ttlMs"] == 600_000
    [layer] = parameter["loadConfigStack"]["layers"]
    assert layer["layerName"] == "apiOverride"
    fields = {f["key"]: f["value"] for f in layer["config"]["fields"]}
    assert fields["llm.load.contextLength"] == 8192
    assert fields["llm.load.llama.flashAttention"] is True


async def test_load_without_options_sends_no_ttl_or_identifier(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        first = await client.llm.load(LLM_KEY)
        second = await client.llm.load(LLM_KEY)
    # LM Studio derives a fresh identifier when the default one is taken.
    assert first.identifier != second.identifier
    assert first.info.instance_reference != second.info.instance_reference
    for create in _created(simulator, "llm", "loadModel"):
        assert "ttlMs" not in create["creationParameter"]
        assert "identifier" not in create["creationParameter"]


async def test_embedding_load_with_dict_config(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.embedding.load(
            EMBEDDING_KEY, identifier="emb-small", config={"context_length": 512}
        )
        assert isinstance(model, lms.EmbeddingModel)
        assert await model.get_context_length() == 512
        config = await model.get_load_config()
        assert isinstance(config, lms.EmbeddingLoadConfig)
        assert config.context_length == 512
        assert len(await model.embed("hello")) == 768
        await client.embedding.unload("emb-small")
    assert "emb-small" not in simulator.loaded_identifiers()


async def test_unload_by_handle_and_by_identifier(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        a = await client.llm.load(LLM_KEY, identifier="a")
        await client.llm.load(LLM_KEY, identifier="b")
        assert {"a", "b"} <= set(simulator.loaded_identifiers())
        await a.unload()
        assert "a" not in simulator.loaded_identifiers()
        await client.llm.unload("b")
        assert "b" not in simulator.loaded_identifiers()
        assert [m.identifier for m in await client.llm.list_loaded()] == ["qwen2.5-7b-instruct"]
    unloads = [
        f["parameter"]
        for f in simulator.frames_received("llm")
        if f.get("type") == "rpcCall" and f.get("endpoint") == "unloadModel"
    ]
    assert unloads == [{"identifier": "a"}, {"identifier": "b"}]


async def test_cancelling_the_awaiting_task_cancels_the_load() -> None:
    async with (
        Simulator(record_frames=True, load_duration=30.0) as sim,
        lms.LMStudioClient(sim.base_url) as client,
    ):
        before = sim.loaded_identifiers()
        async with anyio.create_task_group() as tg:

            async def load() -> None:
                await client.llm.load(LLM_KEY, identifier="never")

            tg.start_soon(load)
            await sim.wait_for(lambda: sim.open_channel_count() == 1)
            tg.cancel_scope.cancel()
        await _settled(sim, client)
        [create] = _created(sim, "llm", "loadModel")
        assert _channel_messages(sim, "llm", create["channelId"]) == [{"type": "cancel"}]
        assert sim.loaded_identifiers() == before
        # The server really stopped loading: it ended the channel with its "cancelled" error.
        await sim.wait_for(lambda: _load_was_cancelled(sim, create["channelId"]))
        # The socket is still good for the next operation.
        assert [m.identifier for m in await client.llm.list_loaded()] == before[:1]


async def test_load_timeout_from_caller_cancels_server_side() -> None:
    async with (
        Simulator(record_frames=True, load_duration=30.0) as sim,
        lms.LMStudioClient(sim.base_url) as client,
    ):
        await client.embedding.list_loaded()  # connected: the 0.2 s below are the load's alone
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.2):
                await client.embedding.load(EMBEDDING_KEY, identifier="slow")
        await _settled(sim, client)
        [create] = _created(sim, "embedding", "loadModel")
        assert _channel_messages(sim, "embedding", create["channelId"]) == [{"type": "cancel"}]
        assert "slow" not in sim.loaded_identifiers()


async def test_failing_progress_callback_cancels_the_load() -> None:
    def on_progress(value: float) -> None:
        raise RuntimeError("progress bar broke")

    async with (
        Simulator(record_frames=True, load_duration=1.0) as sim,
        lms.LMStudioClient(sim.base_url) as client,
    ):
        with pytest.raises(RuntimeError, match="progress bar broke"):
            await client.llm.load(LLM_KEY, identifier="half", on_progress=on_progress)
        await _settled(sim, client)
        [create] = _created(sim, "llm", "loadModel")
        assert {"type": "cancel"} in _channel_messages(sim, "llm", create["channelId"])
        assert "half" not in sim.loaded_identifiers()


async def test_unknown_model_key(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        before = simulator.loaded_identifiers()
        with pytest.raises(lms.LMStudioModelNotFoundError, match="no-such-model"):
            await client.llm.load("no-such-model")
        with pytest.raises(lms.LMStudioModelNotFoundError):
            await client.embedding.load("no-such-model")
        await _settled(simulator, client)
        assert simulator.loaded_identifiers() == before


async def test_identifier_already_in_use(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        await client.llm.load(LLM_KEY, identifier="taken")
        with pytest.raises(lms.LMStudioServerError, match="already exists") as info:
            await client.llm.load("qwen3-4b-thinking", identifier="taken")
        assert not isinstance(info.value, lms.LMStudioModelNotFoundError)
        await _settled(simulator, client)
        assert simulator.loaded_identifiers().count("taken") == 1
        loaded = {m.identifier: m.info.model_key for m in await client.llm.list_loaded()}
        assert loaded["taken"] == LLM_KEY


async def test_unloading_what_is_not_loaded(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        with pytest.raises(lms.LMStudioModelNotFoundError, match="nothing-here"):
            await client.llm.unload("nothing-here")
        # An embedding model is not unloaded through the llm namespace.
        with pytest.raises(lms.LMStudioModelNotFoundError):
            await client.llm.unload(EMBEDDING_KEY)
        assert EMBEDDING_KEY in simulator.loaded_identifiers()
        model = await client.llm.load(LLM_KEY)
        await model.unload()
        with pytest.raises(lms.LMStudioModelNotFoundError):
            await model.unload()


async def test_domain_mismatch_is_a_usage_error(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        # The embedding model is loaded: getOrLoad finds it in the wrong namespace.
        with pytest.raises(lms.LMStudioUsageError, match=r"client\.embedding\.model"):
            await client.llm.model(EMBEDDING_KEY)
        with pytest.raises(lms.LMStudioUsageError, match=r"client\.llm\.model"):
            await client.embedding.model("qwen2.5-7b-instruct")
        # Not loaded yet: the server refuses to load it as the wrong kind.
        with pytest.raises(lms.LMStudioUsageError, match="is not an embedding model"):
            await client.embedding.model(LLM_KEY)
        with pytest.raises(lms.LMStudioUsageError, match="is not an LLM"):
            await client.llm.load(EMBEDDING_KEY)
        with pytest.raises(lms.LMStudioUsageError, match="is not an embedding model"):
            await client.embedding.load(LLM_KEY)
        await _settled(simulator, client)
    assert LLM_KEY not in simulator.loaded_identifiers()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model_key": ""}, "model key"),
        ({"model_key": "a\nb"}, "control characters"),
        ({"model_key": LLM_KEY, "identifier": ""}, "identifier"),
        ({"model_key": LLM_KEY, "ttl": 0}, "ttl"),
        ({"model_key": LLM_KEY, "ttl": -5}, "ttl"),
        ({"model_key": LLM_KEY, "config": {"context_length": 0}}, "context_length"),
        ({"model_key": LLM_KEY, "config": {"no_such_option": 1}}, "no_such_option"),
        ({"model_key": LLM_KEY, "config": 42}, "dict"),
    ],
)
async def test_bad_load_arguments(
    simulator: Simulator, kwargs: dict[str, Any], message: str
) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        with pytest.raises(lms.LMStudioUsageError, match=message):
            await client.llm.load(**kwargs)
    assert _created(simulator, "llm", "loadModel") == []


async def test_bad_unload_argument(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        with pytest.raises(lms.LMStudioUsageError, match="identifier"):
            await client.embedding.unload("")


async def test_model_without_key_rejects_load_options(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        with pytest.raises(lms.LMStudioUsageError, match="model key"):
            await client.embedding.model(ttl=5)
        model = await client.embedding.model()
        assert model.identifier == EMBEDDING_KEY

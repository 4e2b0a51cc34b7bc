"""Before and while loading: resource estimates, processing state, base prediction config,
automatic fit, and ``client.system.info()`` / variants (LM Studio 2.0 endpoints)."""

from __future__ import annotations

import os
from typing import Any

import anyio
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import ModelSpec, ScriptedReply, Simulator

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"
QWEN_BYTES = 4_683_073_952
CONTEXT_BYTES_PER_TOKEN = 64 * 1024  # the simulator's documented context cost


def load_fields(sim: Simulator, endpoint: str) -> dict[str, Any]:
    frame = [
        f
        for f in sim.frames_received("llm")
        if f.get("endpoint") == endpoint and f.get("type") in ("rpcCall", "channelCreate")
    ][-1]
    parameter: dict[str, Any] = frame.get("parameter") or frame["creationParameter"]
    layers = parameter["loadConfigStack"]["layers"]
    return {f["key"]: f["value"] for layer in layers for f in layer["config"]["fields"]}


async def test_estimate_resources_usage_reports_memory_and_guardrails(
    simulator: Simulator, client: lms.LMStudioClient
) -> None:
    loaded_before = simulator.loaded_identifiers()
    default = await client.llm.estimate_resources_usage(MODEL)
    assert default.memory.model_bytes == QWEN_BYTES
    assert default.memory.context_bytes == 4096 * CONTEXT_BYTES_PER_TOKEN
    assert default.memory.total_bytes == QWEN_BYTES + 4096 * CONTEXT_BYTES_PER_TOKEN
    assert default.memory.total_vram_bytes == default.memory.total_bytes
    assert default.memory.confidence == "high"
    assert default.passes_guardrails is True
    assert "llm.load.llama.autoFit" not in load_fields(simulator, "estimateModelUsage")

    half = await client.llm.estimate_resources_usage(
        MODEL, config={"context_length": 32768, "gpu": {"ratio": 0.5}}
    )
    assert half.memory.context_bytes == 32768 * CONTEXT_BYTES_PER_TOKEN
    assert half.memory.model_vram_bytes == QWEN_BYTES // 2
    fields = load_fields(simulator, "estimateModelUsage")
    assert fields["llm.load.llama.autoFit"] is False
    assert fields["llm.load.contextLength"] == 32768
    assert simulator.loaded_identifiers() == loaded_before  # estimating loads nothing


async def test_a_model_too_big_for_the_machine_fails_the_guardrails() -> None:
    huge = ModelSpec(model_key="huge-405b", size_bytes=230 * 1024**3)
    async with Simulator(catalog=[huge], loaded=[]) as sim, lms.LMStudioClient(sim.base_url) as c:
        estimate = await c.llm.estimate_resources_usage("huge-405b")
        assert estimate.passes_guardrails is False
        assert sim.loaded_identifiers() == []


async def test_a_context_beyond_the_model_maximum_is_estimated_as_asked(
    client: lms.LMStudioClient,
) -> None:
    # Ten million tokens of context need 610 GiB here: not clipped to the model's 32768.
    huge = await client.llm.estimate_resources_usage(MODEL, config={"context_length": 10_000_000})
    assert huge.memory.context_bytes == 10_000_000 * CONTEXT_BYTES_PER_TOKEN
    assert huge.passes_guardrails is False


async def test_estimates_for_unknown_and_wrong_kind_models_are_errors(
    client: lms.LMStudioClient,
) -> None:
    with pytest.raises(lms.LMStudioModelNotFoundError):
        await client.llm.estimate_resources_usage("no-such-model")
    with pytest.raises(lms.LMStudioServerError, match="not a embedding model"):
        await client.embedding.estimate_resources_usage(MODEL)
    embedding = await client.embedding.estimate_resources_usage(
        "text-embedding-nomic-embed-text-v1.5"
    )
    assert embedding.memory.model_bytes == 84_106_624


async def test_processing_state_follows_a_running_prediction(
    simulator: Simulator, model: lms.LLM
) -> None:
    assert await model.get_processing_state() == lms.types.ModelProcessingState(
        status="idle", queued=0
    )
    simulator.script(MODEL, ScriptedReply(content="slow " * 50, tokens_per_second=20))
    async with model.respond("Go") as prediction:
        async for _ in prediction:
            state = await model.get_processing_state()
            break
    assert state == lms.types.ModelProcessingState(status="generating", queued=1)
    await simulator.wait_for(lambda: simulator.predictions[-1].status != "running")
    assert (await model.get_processing_state()).status == "idle"


async def test_processing_state_says_processing_prompt_before_the_first_token(
    simulator: Simulator, model: lms.LLM
) -> None:
    # Thirty seconds of prompt processing: the check below happens well inside them.
    simulator.script(MODEL, ScriptedReply(content="late", time_to_first_token=30.0))

    async def respond() -> None:
        await model.respond("Go")

    async with anyio.create_task_group() as tg:
        tg.start_soon(respond)
        await simulator.wait_for(lambda: len(simulator.predictions) == 1, timeout=20)
        state = await model.get_processing_state()
        tg.cancel_scope.cancel()
    assert state == lms.types.ModelProcessingState(status="processingPrompt", queued=1)


async def test_processing_state_says_computing_embedding_while_embedding() -> None:
    async with (
        Simulator(embed_duration=30.0, record_frames=True) as sim,
        lms.LMStudioClient(sim.base_url) as client,
    ):
        model = await client.embedding.model()
        assert (await model.get_processing_state()).status == "idle"

        def embedding() -> bool:
            return any(f.get("endpoint") == "embedString" for f in sim.frames_received("embedding"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(model.embed, ["a", "b", "c"])
            await sim.wait_for(embedding, timeout=20)
            state = await model.get_processing_state()
            tg.cancel_scope.cancel()
    assert state.status == "computingEmbedding"
    assert state.queued >= 1


async def test_processing_state_of_an_unloaded_model_is_not_found(
    client: lms.LMStudioClient, model: lms.LLM
) -> None:
    await model.unload()
    with pytest.raises(lms.LMStudioModelNotFoundError):
        await model.get_processing_state()


async def test_base_prediction_config_is_typed(model: lms.LLM) -> None:
    config = await model.get_base_prediction_config()
    assert isinstance(config, lms.PredictionConfig)
    assert config.temperature == 0.8
    assert config.top_k_sampling == 40


async def test_load_with_manual_settings_switches_auto_fit_off(
    simulator: Simulator, client: lms.LMStudioClient
) -> None:
    fitted = await client.llm.load("google/gemma-3-4b", identifier="fitted")
    assert "llm.load.llama.autoFit" not in load_fields(simulator, "loadModel")
    manual = await client.llm.load(
        "google/gemma-3-4b",
        identifier="manual",
        config={"context_length": 8192, "max_parallel_predictions": 2},
    )
    fields = load_fields(simulator, "loadModel")
    assert fields["llm.load.llama.autoFit"] is False
    assert fields["llm.load.mlx.autoFit"] is False
    assert fields["llm.load.yuzu.autoFit"] is False
    assert fields["llm.load.numParallelSessions"] == 2
    assert "load.gpuSplitConfig" not in fields
    loaded = await manual.get_load_config()
    assert (loaded.context_length, loaded.auto_fit, loaded.max_parallel_predictions) == (
        8192,
        False,
        2,
    )
    assert (await fitted.get_load_config()).auto_fit is None


async def test_system_info_and_variants(simulator: Simulator, client: lms.LMStudioClient) -> None:
    info = await client.system.info()
    assert info == lms.ServiceInfo(pid=os.getpid(), is_daemon=False, version="0.3.30")
    # A model downloaded in one form only has no variants (see the repository tests for some).
    with pytest.raises(lms.LMStudioServerError, match="does not have any variants"):
        await client.system.list_downloaded_model_variants(MODEL)
    with pytest.raises(lms.LMStudioModelNotFoundError):
        await client.system.list_downloaded_model_variants("no-such-model")

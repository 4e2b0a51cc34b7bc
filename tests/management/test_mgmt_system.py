"""``client.system`` and the client-level listing conveniences."""

from __future__ import annotations

import pytest

import lmstudio_async as lms
from lmstudio_async.testing import ModelSpec, Simulator
from lmstudio_async.types import ModelInfo

pytestmark = pytest.mark.anyio


async def test_list_downloaded_models_both_kinds(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        models = await client.list_downloaded_models()
        assert models == await client.system.list_downloaded_models()
    keys = {m.model_key: m for m in models}
    assert set(keys) == {
        "qwen2.5-7b-instruct",
        "google/gemma-3-4b",
        "qwen3-4b-thinking",
        "text-embedding-nomic-embed-text-v1.5",
    }
    gemma = keys["google/gemma-3-4b"]
    assert isinstance(gemma, lms.LLMInfo)
    assert gemma.vision is True
    assert gemma.max_context_length == 131072
    assert isinstance(keys["text-embedding-nomic-embed-text-v1.5"], lms.EmbeddingModelInfo)


async def test_list_loaded_models_gives_typed_handles(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        await client.llm.load("google/gemma-3-4b", identifier="vision")
        loaded = await client.list_loaded_models()
        assert [(type(m), m.identifier) for m in loaded] == [
            (lms.LLM, "qwen2.5-7b-instruct"),
            (lms.LLM, "vision"),
            (lms.EmbeddingModel, "text-embedding-nomic-embed-text-v1.5"),
        ]
        # The handles work straight away.
        for handle in loaded:
            assert await handle.count_tokens("two words") > 0
        await client.llm.unload("vision")
        assert [m.identifier for m in await client.list_loaded_models()] == [
            "qwen2.5-7b-instruct",
            "text-embedding-nomic-embed-text-v1.5",
        ]


async def test_nothing_loaded() -> None:
    async with (
        Simulator(loaded=[]) as sim,
        lms.LMStudioClient(sim.base_url) as client,
    ):
        assert await client.list_loaded_models() == []
        assert await client.llm.list_loaded() == []
        with pytest.raises(lms.LMStudioModelNotFoundError):
            await client.llm.model()
        downloaded: list[ModelInfo] = await client.list_downloaded_models()
        assert downloaded


async def test_version(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        version = await client.system.version()
    assert version == lms.LMStudioVersion(version="0.3.30", build=2)


async def test_optional_model_fields_may_be_absent() -> None:
    # Unknown fields are covered by tests/types; here the optional ones are simply missing.
    spec = ModelSpec(
        model_key="future-model",
        format="safetensors",
        params_string=None,
        quantization_name=None,
    )
    async with (
        Simulator(catalog=[spec], loaded=["future-model"]) as sim,
        lms.LMStudioClient(sim.base_url) as client,
    ):
        [info] = await client.list_downloaded_models()
        assert info.params_string is None
        assert info.quantization is None
        [handle] = await client.list_loaded_models()
        assert handle.info.format == "safetensors"

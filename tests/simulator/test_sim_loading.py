"""Loads as LM Studio runs them: concurrent loads, TTL as idle time, unloading a busy model.

An identifier is taken when its load starts, not when it ends; a ``getOrLoad`` of a model
being loaded waits for that load; TTL counts from the end of the last request; a model
unloaded under a running prediction ends that prediction with the app's error.
"""

from __future__ import annotations

import asyncio

import lmstudio
import pytest

from lmstudio_async.testing import ModelSpec, Simulator, default_catalog

pytestmark = pytest.mark.anyio

SMALL = "smollm2-135m-instruct"
OTHER = "other-small"
LLM = "qwen2.5-7b-instruct"
EMBEDDER = "text-embedding-nomic-embed-text-v1.5"
# Long enough that loads started together overlap even on a loaded machine.
LOAD_SECONDS = 0.4


def _simulator(
    *,
    load_duration: float = 0.02,
    tokens_per_second: float | None = None,
    record_frames: bool = False,
) -> Simulator:
    catalog = [*default_catalog(), ModelSpec(model_key=SMALL), ModelSpec(model_key=OTHER)]
    return Simulator(
        catalog=catalog,
        load_duration=load_duration,
        tokens_per_second=tokens_per_second,
        record_frames=record_frames,
    )


def _host(sim: Simulator) -> str:
    return f"{sim.host}:{sim.port}"


async def test_concurrent_get_or_load_of_one_model_loads_it_once_for_every_caller() -> None:
    async with _simulator(load_duration=LOAD_SECONDS) as sim:
        async with lmstudio.AsyncClient(_host(sim)) as client:
            models = await asyncio.gather(*[client.llm.model(SMALL) for _ in range(3)])
        assert [m.identifier for m in models] == [SMALL] * 3
        assert sim.loaded_identifiers() == [LLM, EMBEDDER, SMALL]


async def test_concurrent_loads_without_identifier_get_key_and_key_2() -> None:
    async with _simulator(load_duration=LOAD_SECONDS) as sim:
        async with lmstudio.AsyncClient(_host(sim)) as client:
            models = await asyncio.gather(*[client.llm.load_new_instance(SMALL) for _ in range(2)])
        assert sorted(m.identifier for m in models) == [SMALL, f"{SMALL}:2"]
        assert sorted(sim.loaded_identifiers()) == sorted([LLM, EMBEDDER, SMALL, f"{SMALL}:2"])


async def test_concurrent_loads_asking_for_one_identifier_load_it_once() -> None:
    async with _simulator(load_duration=LOAD_SECONDS) as sim:
        async with lmstudio.AsyncClient(_host(sim)) as client:
            results = await asyncio.gather(
                *[client.llm.load_new_instance(SMALL, "mine") for _ in range(2)],
                return_exceptions=True,
            )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1
        assert 'A model with identifier "mine" already exists' in str(errors[0])
        assert sim.loaded_identifiers() == [LLM, EMBEDDER, "mine"]


async def test_concurrent_jit_loads_of_two_models_leave_only_the_later_loaded() -> None:
    def loading() -> bool:
        sent = sim.frames_sent("llm")
        return any(f.get("message", {}).get("type") == "startLoading" for f in sent)

    async with _simulator(load_duration=LOAD_SECONDS, record_frames=True) as sim:
        async with lmstudio.AsyncClient(_host(sim)) as client:
            first = asyncio.ensure_future(client.llm.model(SMALL))
            await sim.wait_for(loading)
            second = await client.llm.model(OTHER)
            await first
        assert second.identifier == OTHER
        # The second JIT load waited for the first, then evicted it, as it evicts any other.
        assert sim.loaded_identifiers() == [LLM, EMBEDDER, OTHER]


async def test_ttl_counts_idle_time_from_the_end_of_a_prediction() -> None:
    # A 2 s TTL and a prediction of about 3 s (15 tokens at 5 per second): right after the
    # prediction ends the model has been idle for no time at all.
    async with _simulator(tokens_per_second=5) as sim:
        async with lmstudio.AsyncClient(_host(sim)) as client:
            model = await client.llm.load_new_instance(SMALL, "ttl-model", ttl=2)
            result = await model.respond("one two three four five six seven eight nine ten")
            loaded = [m.identifier for m in await client.llm.list_loaded()]
        assert result.stats.stop_reason == "eosFound"
        assert "ttl-model" in loaded


async def test_a_jit_eviction_ends_the_prediction_running_on_the_evicted_model() -> None:
    words = " ".join(["word"] * 40)  # 40 s of reply at one token per second
    async with _simulator(tokens_per_second=1) as sim:
        async with lmstudio.AsyncClient(_host(sim)) as client:
            first = await client.llm.model(SMALL)

            async def predict() -> None:
                stream = await first.respond_stream(words)
                async for _ in stream:
                    pass

            task = asyncio.ensure_future(predict())
            await sim.wait_for(lambda: any(r.fragments_sent for r in sim.predictions))
            await client.llm.model(OTHER)  # evicts SMALL, loaded just in time too
            with pytest.raises(lmstudio.LMStudioServerError, match="Model is unloaded"):
                await task
        assert sim.predictions[-1].status == "errored"
        assert sim.loaded_identifiers() == [LLM, EMBEDDER, OTHER]


async def test_unloading_a_model_ends_the_prediction_running_on_it() -> None:
    words = " ".join(["word"] * 40)
    async with _simulator(tokens_per_second=1) as sim:
        async with lmstudio.AsyncClient(_host(sim)) as client:
            model = await client.llm.load_new_instance(SMALL)
            task = asyncio.ensure_future(model.respond(words))
            await sim.wait_for(lambda: any(r.fragments_sent for r in sim.predictions))
            await client.llm.unload(SMALL)
            with pytest.raises(lmstudio.LMStudioServerError, match="Model is unloaded"):
                await task
        assert sim.loaded_identifiers() == [LLM, EMBEDDER]

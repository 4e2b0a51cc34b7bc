"""run_batch against the simulator: outcomes, tasks, failures, bounds, cancellation, failover."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import msgspec
import pytest

import lmstudio_async as lms
from lmstudio_async.batch import DEFAULT_CONCURRENCY, BatchOutcome, BatchRequest, run_batch
from lmstudio_async.testing import Faults, ScriptedReply, Simulator

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"
STALL = ScriptedReply(content="never finished", faults=Faults(stall_after_fragments=1))


class Fact(msgspec.Struct):
    fact: str


async def collect(run: AsyncIterator[BatchOutcome]) -> list[BatchOutcome]:
    return [outcome async for outcome in run]


async def test_respond_yields_one_outcome_per_item_with_progress(simulator: Simulator) -> None:
    prompts = [f"prompt {n}" for n in range(25)]
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        async with run_batch(model, prompts, concurrency=3) as run:
            outcomes = await collect(run)
    assert sorted(o.index for o in outcomes) == list(range(25))
    for outcome in outcomes:
        assert outcome.ok
        assert outcome.input == prompts[outcome.index]
        assert outcome.result.content == f"You said: {prompts[outcome.index]}"
        assert outcome.attempts == 1
    progress = run.progress
    assert (progress.total, progress.done, progress.failed, progress.in_flight) == (25, 25, 0, 0)
    assert progress.rate > 0
    assert "25/25 done" in str(progress)


async def test_async_iterable_chats_and_per_item_config(simulator: Simulator) -> None:
    async def inputs() -> AsyncIterator[Any]:
        yield [{"role": "user", "content": "from a list"}]
        yield lms.Chat.from_history("from a chat")
        yield BatchRequest("with its own config", config={"max_tokens": 7})

    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        async with run_batch(model, inputs(), config={"temperature": 0.5}) as run:
            outcomes = {o.index: o for o in await collect(run)}
    assert run.progress.total is None
    assert outcomes[0].result.content == "You said: from a list"
    assert outcomes[1].result.content == "You said: from a chat"
    assert outcomes[2].result.content == "You said: with its own config"
    sent = outcomes[2].result.prediction_config
    assert (sent.max_tokens, sent.temperature) == (7, 0.5)


async def test_complete_embed_and_structured_output(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        async with run_batch(model, ["Once upon"], task="complete") as run:
            (completed,) = await collect(run)
        async with run_batch(model, ["A fact, please"], response_format=Fact) as run:
            (structured,) = await collect(run)
        embedder = await client.embedding.model()
        async with run_batch(embedder, ["alpha", "beta"]) as run:
            embedded = await collect(run)
    assert completed.ok
    assert simulator.predictions[0].raw_prompt == "Once upon"
    assert isinstance(structured.result.parsed, Fact)
    assert structured.to_record()["parsed"] == {"fact": structured.result.parsed.fact}
    assert all(o.ok and isinstance(o.result, list) and o.result for o in embedded)
    assert "embedding" in embedded[0].to_record()


async def test_a_failing_item_does_not_stop_the_batch(simulator: Simulator) -> None:
    error = {"title": "The model crashed on this one", "displayData": {"code": "x.crash"}}
    simulator.script(MODEL, ScriptedReply(error=error))
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        # concurrency 1: the scripted error lands on the first item, in input order.
        async with run_batch(model, ["a", "b", "c", 42], concurrency=1) as run:
            outcomes = {o.index: o for o in await collect(run)}
    assert isinstance(outcomes[0].error, lms.LMStudioServerError)
    assert outcomes[0].to_record()["error_type"] == type(outcomes[0].error).__name__
    assert "crashed on this one" in outcomes[0].to_record()["error"]
    assert outcomes[1].ok
    assert outcomes[2].ok
    assert isinstance(outcomes[3].error, lms.LMStudioUsageError)  # not a chat: respond() said so
    assert (run.progress.done, run.progress.failed) == (4, 2)


async def test_concurrency_bounds_each_handle_and_leaving_cancels_in_lm_studio(
    simulator: Simulator,
) -> None:
    simulator.script(MODEL, *[STALL] * 10)
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        async with run_batch(model, [f"p{n}" for n in range(10)], concurrency=2) as run:
            await simulator.wait_for(lambda: len(simulator.predictions) == 2)
            assert run.progress.in_flight == 2
        # Leaving the block cancelled both running predictions in LM Studio, and no third
        # one was ever started: the two workers were busy.
        await simulator.wait_for(lambda: all(p.cancel_received for p in simulator.predictions))
        assert len(simulator.predictions) == 2
        await simulator.wait_for(lambda: simulator.open_channel_count() == 0)


@pytest.mark.parametrize(("parallel", "expected"), [(3, 3), (None, DEFAULT_CONCURRENCY)])
async def test_default_concurrency_is_what_the_model_is_loaded_to_run_in_parallel(
    simulator: Simulator, parallel: int | None, expected: int
) -> None:
    simulator.script("batch-model", *[STALL] * 10)
    config = {} if parallel is None else {"max_parallel_predictions": parallel}
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.load(MODEL, identifier="batch-model", config=config)
        async with run_batch(model, [f"p{n}" for n in range(10)]) as run:
            await simulator.wait_for(lambda: len(simulator.predictions) == expected)
            assert run.progress.in_flight == expected
        await simulator.wait_for(lambda: all(p.cancel_received for p in simulator.predictions))
        assert len(simulator.predictions) == expected


async def test_cancelling_the_awaiting_task_cancels_every_running_prediction(
    simulator: Simulator,
) -> None:
    simulator.script(MODEL, *[STALL] * 6)
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        with anyio.CancelScope() as scope:
            async with (
                run_batch(model, ["a", "b", "c", "d", "e", "f"], concurrency=3) as run,
                anyio.create_task_group() as group,
            ):
                group.start_soon(collect, run)
                await simulator.wait_for(lambda: len(simulator.predictions) == 3)
                scope.cancel()
        assert scope.cancelled_caught
        await simulator.wait_for(lambda: all(p.cancel_received for p in simulator.predictions))
        assert len(simulator.predictions) == 3


async def test_iterating_a_finished_run_outside_its_block_says_so(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        async with run_batch(model, ["a"]) as run:
            pass
        with pytest.raises(lms.LMStudioUsageError, match="inside its `async with"):
            await run.__anext__()
    assert run.progress.finished is not None  # elapsed stops with the run


async def test_invalid_arguments_are_usage_errors(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        embedder = await client.embedding.model()
        cases: list[tuple[Any, Any, dict[str, Any], str]] = [
            ([], ["a"], {}, "at least one model handle"),
            (model, ["a"], {"concurrency": 0}, "concurrency must be an int >= 1"),
            (model, ["a"], {"max_retries": -1}, "max_retries"),
            (model, "abc", {}, "inputs must be an iterable"),
            (model, ["a"], {"task": "embed"}, "needs EmbeddingModel handles"),
            ([model, embedder], ["a"], {}, "handle 1 is a EmbeddingModel"),
            (embedder, ["a"], {"response_format": Fact}, "not embed"),
            (model, ["a"], {"resume": True}, "resume=True needs output="),
            (client, ["a"], {}, "got LMStudioClient"),
        ]
        for models, inputs, options, message in cases:
            with pytest.raises(lms.LMStudioUsageError, match=message):
                async with run_batch(models, inputs, **options):
                    pass


async def test_an_input_that_raises_is_raised_after_the_running_items_finish(
    simulator: Simulator,
) -> None:
    def inputs() -> Any:
        yield "first"
        raise RuntimeError("the prompt file went away")

    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        seen: list[BatchOutcome] = []

        async def consume() -> None:
            async with run_batch(model, inputs()) as run:
                async for outcome in run:
                    seen.append(outcome)  # one by one: keep those seen before the error

        with pytest.raises(RuntimeError, match="went away"):
            await consume()
    assert [o.index for o in seen] == [0]
    assert seen[0].ok


async def test_a_dropped_host_fails_its_items_over_to_the_other_host() -> None:
    prompts = [f"prompt {n}" for n in range(20)]
    async with Simulator() as sim_b:
        sim_a = Simulator()
        await sim_a.start()
        try:
            # Host A's first two predictions hang, so they are in flight when it goes away.
            sim_a.script(MODEL, STALL, STALL)
            async with (
                lms.LMStudioClient(sim_a.base_url) as client_a,
                lms.LMStudioClient(sim_b.base_url) as client_b,
            ):
                models = [await client_a.llm.model(MODEL), await client_b.llm.model(MODEL)]
                results: list[BatchOutcome] = []
                async with (
                    run_batch(models, prompts, concurrency=2) as run,
                    anyio.create_task_group() as group,
                ):

                    async def consume() -> None:
                        results.extend(await collect(run))

                    group.start_soon(consume)
                    await sim_a.wait_for(lambda: len(sim_a.predictions) == 2)
                    await sim_a.aclose()  # host A is gone for good, mid-run
        finally:
            await sim_a.aclose()
    by_index = {o.index: o for o in results}
    assert sorted(by_index) == list(range(20))  # nothing lost, nothing twice
    assert len(results) == 20
    assert all(o.ok for o in results)
    failed_over = [o for o in results if o.retried]
    stalled = {p.history["messages"][0]["content"][0]["text"] for p in sim_a.predictions[:2]}  # type: ignore[index]
    assert {o.input for o in failed_over} >= stalled
    for outcome in failed_over:
        assert outcome.handle == 1
        assert outcome.attempts == len(outcome.retried) + 1
        assert outcome.retried[0].startswith("handle 0: ")
    assert run.progress.retries >= 2


async def test_with_one_handle_a_dropped_item_is_retried_once_it_reconnects(
    simulator: Simulator,
) -> None:
    # LM Studio drops the socket mid-reply once (a restart); the next socket works.
    drop = ScriptedReply(content="cut short here", faults=Faults(drop_after_fragments=1))
    simulator.script(MODEL, drop)
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        async with run_batch(model, ["again"]) as run:
            (outcome,) = await collect(run)
    assert outcome.ok
    assert outcome.result.content == "You said: again"
    assert outcome.attempts == 2
    assert outcome.retried[0].startswith("handle 0: ")
    assert [p.status for p in simulator.predictions] == ["disconnected", "finished"]


async def test_retries_are_bounded_and_the_connection_error_is_kept() -> None:
    sim = Simulator()
    await sim.start()
    try:
        sim.script(MODEL, STALL)
        async with lms.LMStudioClient(sim.base_url) as client:
            model = await client.llm.model(MODEL)
            results: list[BatchOutcome] = []
            async with (
                run_batch(model, ["only"], max_retries=1) as run,
                anyio.create_task_group() as group,
            ):

                async def consume() -> None:
                    results.extend(await collect(run))

                group.start_soon(consume)
                await sim.wait_for(lambda: len(sim.predictions) == 1)
                await sim.aclose()
    finally:
        await sim.aclose()
    (outcome,) = results
    assert isinstance(outcome.error, lms.LMStudioConnectionError)
    assert outcome.attempts == 2
    assert len(outcome.retried) == 1
    assert outcome.to_record()["error_type"].startswith("LMStudio")

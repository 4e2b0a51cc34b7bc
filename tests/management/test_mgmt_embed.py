"""Embedding single texts and batches: order, bounded concurrency, progress, bad input."""

from __future__ import annotations

import math

import anyio
import anyio.lowlevel
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import Faults, Simulator

pytestmark = pytest.mark.anyio

EMBEDDING_KEY = "text-embedding-nomic-embed-text-v1.5"


def _embed_calls_in_flight(sim: Simulator) -> tuple[int, int]:
    """(embedString calls the server received, of those how many it has not answered yet)."""
    calls = {
        f["callId"]
        for f in sim.frames_received("embedding")
        if f.get("type") == "rpcCall" and f.get("endpoint") == "embedString"
    }
    answered = {
        f["callId"]
        for f in sim.frames_sent("embedding")
        if f.get("type") in ("rpcResult", "rpcError") and f.get("callId") in calls
    }
    return len(calls), len(calls - answered)


async def test_embed_one_text(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.embedding.model()
        vector = await model.embed("hello world")
        assert len(vector) == 768
        assert all(isinstance(x, float) for x in vector)
        assert vector == await model.embed("hello world")
        assert vector != await model.embed("something else")


async def test_embed_1000_texts_with_at_most_8_in_flight() -> None:
    texts = [f"document number {i}: {'lorem ' * (i % 7)}" for i in range(1000)]
    async with (
        Simulator(record_frames=True) as sim,
        lms.LMStudioClient(sim.base_url) as client,
    ):
        model = await client.embedding.model()
        # Sample of expected vectors (the simulator's embeddings are deterministic per text).
        sample = {i: await model.embed(texts[i]) for i in (0, 1, 7, 500, 998, 999)}
        received_before, _ = _embed_calls_in_flight(sim)
        # Every answer takes 5 ms, so a call stays in flight across many samples below.
        sim.faults = Faults(rpc_delay=0.005)
        peak = 0
        progress: list[tuple[int, int]] = []

        async with anyio.create_task_group() as tg:

            async def sample_in_flight() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, _embed_calls_in_flight(sim)[1])
                    await anyio.sleep(0.001)

            tg.start_soon(sample_in_flight)
            vectors = await model.embed(
                texts,
                max_concurrency=8,
                progress=lambda done, total: progress.append((done, total)),
            )
            tg.cancel_scope.cancel()

        received, in_flight = _embed_calls_in_flight(sim)
        assert received - received_before == 1000  # one RPC per text, no retries
        assert in_flight == 0
        assert peak == 8, f"peak in flight was {peak}"
        assert len(vectors) == 1000
        for i, expected in sample.items():
            assert vectors[i] == expected
        assert progress == [(n, 1000) for n in range(1, 1001)]


async def test_embed_keeps_order_and_default_concurrency_is_bounded() -> None:
    texts = [f"t{i}" for i in range(40)]
    async with (
        Simulator(record_frames=True) as sim,
        lms.LMStudioClient(sim.base_url) as client,
    ):
        model = await client.embedding.model()
        expected = [await model.embed(t) for t in texts]
        sim.faults = Faults(rpc_delay=0.01)
        peak = 0
        async with anyio.create_task_group() as tg:

            async def sample_in_flight() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, _embed_calls_in_flight(sim)[1])
                    await anyio.sleep(0.001)

            tg.start_soon(sample_in_flight)
            vectors = await model.embed(texts)
            tg.cancel_scope.cancel()
        assert vectors == expected
        assert peak == 16
        assert await model.embed(("a",), max_concurrency=1) == [await model.embed("a")]


async def test_async_progress_callback(simulator: Simulator) -> None:
    seen: list[int] = []

    async def progress(done: int, total: int) -> None:
        await anyio.lowlevel.checkpoint()
        assert total == 5
        seen.append(done)

    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.embedding.model()
        await model.embed(["a", "b", "c", "d", "e"], max_concurrency=3, progress=progress)
    assert seen == [1, 2, 3, 4, 5]


async def test_a_failure_stops_the_batch_and_is_raised_plainly() -> None:
    async with (
        Simulator(record_frames=True) as sim,
        lms.LMStudioClient(sim.base_url) as client,
    ):
        model = await client.embedding.load(EMBEDDING_KEY, identifier="doomed")
        sim.faults = Faults(rpc_delay=0.01)
        done: list[int] = []

        async def unload_midway(count: int, total: int) -> None:
            done.append(count)
            if count == 10:
                await client.embedding.unload("doomed")

        with pytest.raises(lms.LMStudioModelNotFoundError):
            await model.embed(
                [f"text {i}" for i in range(200)], max_concurrency=4, progress=unload_midway
            )
        received, _ = _embed_calls_in_flight(sim)
        assert received < 200  # the rest of the batch was never sent
        assert 10 <= len(done) < 200


async def test_a_failing_progress_callback_stops_the_batch(simulator: Simulator) -> None:
    def progress(done: int, total: int) -> None:
        if done == 3:
            raise KeyError("stop here")

    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.embedding.model()
        with pytest.raises(KeyError, match="stop here"):
            await model.embed([str(i) for i in range(50)], max_concurrency=2, progress=progress)
    received, _ = _embed_calls_in_flight(simulator)
    assert received < 50


class StopBatch(BaseException):
    """A caller's own control flow (like KeyboardInterrupt): not an ordinary error."""


async def test_a_base_exception_from_the_progress_callback_comes_out_unwrapped(
    simulator: Simulator,
) -> None:
    def progress(done: int, total: int) -> None:
        raise StopBatch("enough")

    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.embedding.model()
        with anyio.fail_after(5), pytest.raises(StopBatch) as caught:
            await model.embed([str(i) for i in range(50)], max_concurrency=4, progress=progress)
        assert type(caught.value) is StopBatch, "not wrapped in an exception group"
        assert client._pool.pending_call_count() == 0
    received, _ = _embed_calls_in_flight(simulator)
    assert received < 50


async def test_cancelling_a_batch(simulator: Simulator) -> None:
    simulator.faults = Faults(rpc_delay=0.05)
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.embedding.model()

        async def batch() -> None:
            await model.embed([str(i) for i in range(100)], max_concurrency=4)

        async with anyio.create_task_group() as tg:
            tg.start_soon(batch)
            await simulator.wait_for(lambda: _embed_calls_in_flight(simulator)[0] >= 4)
            tg.cancel_scope.cancel()
        assert client._pool.pending_call_count() == 0, "cancelled calls are forgotten"
        simulator.faults = Faults()
        # One socket delivers in order: once this answer is back, the server has read every
        # call the batch wrote, and nothing new followed the cancel but this one.
        assert len(await model.embed("still works")) == 768
        received, _ = _embed_calls_in_flight(simulator)
        batch_calls = received - 1
        assert 4 <= batch_calls < 100, "the batch stopped early"
        assert len(await model.embed("and again")) == 768
        assert _embed_calls_in_flight(simulator)[0] == received + 1, "calls sent after cancel"


@pytest.mark.parametrize("max_concurrency", [0, -1, 1.5, True, "8"])
async def test_bad_max_concurrency(simulator: Simulator, max_concurrency: object) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.embedding.model()
        with pytest.raises(lms.LMStudioUsageError, match="max_concurrency"):
            await model.embed(["a"], max_concurrency=max_concurrency)  # type: ignore[call-overload]
    assert _embed_calls_in_flight(simulator) == (0, 0)


async def test_bad_embed_input(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.embedding.model()
        with pytest.raises(lms.LMStudioUsageError, match="empty list"):
            await model.embed([])
        with pytest.raises(lms.LMStudioUsageError, match="item 2 is a NoneType"):
            await model.embed(["a", "b", None])  # type: ignore[list-item]
        with pytest.raises(lms.LMStudioUsageError, match="got int"):
            await model.embed(3)  # type: ignore[call-overload]
        with pytest.raises(lms.LMStudioUsageError, match="got set"):
            await model.embed({"a"})  # type: ignore[call-overload]
        with pytest.raises(lms.LMStudioUsageError, match="lists of texts only"):
            await model.embed("a", progress=lambda d, t: None)  # type: ignore[call-overload]
    assert _embed_calls_in_flight(simulator) == (0, 0)


async def test_embeddings_are_usable_vectors(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.embedding.model(EMBEDDING_KEY)
        a, b = await model.embed(["cat", "dog"])
        assert len(a) == len(b) == 768
        assert math.isfinite(sum(x * y for x, y in zip(a, b, strict=True)))

"""Who consumes a prediction: one loop, any number of result() waiters, one server prediction.

Ownership is decided by which iterator was opened, never by which task touched the handle, so
helpers that run a step in a task of their own (``asyncio.wait_for`` before 3.12,
``create_task``) do not change the outcome.
"""

from __future__ import annotations

import asyncio
import gc

import anyio
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import ScriptedReply, Simulator

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"
WORDS = [f"w{i}" for i in range(40)]
CONTENT = " ".join(WORDS)


def _script(simulator: Simulator, tokens_per_second: float | None = None) -> None:
    simulator.script(MODEL, ScriptedReply(content=CONTENT, tokens_per_second=tokens_per_second))


def _cancels(simulator: Simulator) -> int:
    return sum(
        1
        for f in simulator.frames_received("llm")
        if f.get("type") == "channelSend" and f["message"] == {"type": "cancel"}
    )


# -- item 1: result() never waits on a task that is not iterating ----------------------------


async def test_result_after_anext_in_wait_for(simulator: Simulator, model: lms.LLM) -> None:
    _script(simulator)
    prediction = model.respond("go")
    iterator = aiter(prediction)
    with anyio.fail_after(10):
        first = await asyncio.wait_for(anext(iterator), 5)
        result = await prediction
    assert result.content == CONTENT
    assert CONTENT.startswith(first.content)
    assert result.stats.stop_reason == "eosFound"


async def test_result_after_anext_in_a_finished_task(simulator: Simulator, model: lms.LLM) -> None:
    _script(simulator)
    prediction = model.respond("go")
    iterator = aiter(prediction)
    with anyio.fail_after(10):

        async def step() -> lms.PredictionFragment:
            return await anext(iterator)

        first = await asyncio.create_task(step())
        result = await prediction
    assert result.content == CONTENT
    # The iterator is not shortchanged: it still gets what result() read past it.
    rest = [fragment.content async for fragment in iterator]
    assert first.content + "".join(rest) == CONTENT


async def test_result_in_another_task_does_not_take_the_loops_fragments(
    simulator: Simulator, model: lms.LLM
) -> None:
    _script(simulator, tokens_per_second=400)
    prediction = model.respond("go")
    seen: list[str] = []
    results: list[lms.PredictionResult[str]] = []

    async def iterate() -> None:
        async for fragment in prediction:
            seen.append(fragment.content)
            await anyio.sleep(0.005)  # a slow loop body: result() reads meanwhile

    async def await_result() -> None:
        await anyio.sleep(0.02)
        results.append(await prediction)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(iterate)
            tg.start_soon(await_result)
    assert "".join(seen) == CONTENT
    assert results[0].content == CONTENT


# -- item 2: two consumers ---------------------------------------------------------------------


async def test_a_second_loop_is_a_usage_error_every_time(
    simulator: Simulator, model: lms.LLM
) -> None:
    _script(simulator, tokens_per_second=400)
    prediction = model.respond("go")
    seen: list[str] = []
    errors: list[BaseException] = []
    first_fragment = anyio.Event()

    async def first_loop() -> None:
        async for fragment in prediction:
            seen.append(fragment.content)
            first_fragment.set()

    async def second_loop() -> None:
        await first_fragment.wait()
        try:
            async for _ in prediction:
                raise AssertionError("the second loop must not receive fragments")
        except lms.LMStudioUsageError as exc:
            errors.append(exc)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(first_loop)
            tg.start_soon(second_loop)
    assert "".join(seen) == CONTENT, "the first loop keeps every fragment"
    assert len(errors) == 1
    assert "already being iterated" in str(errors[0])


async def test_concurrent_first_consumers_start_one_server_prediction(
    simulator: Simulator, model: lms.LLM
) -> None:
    _script(simulator)
    before = len(simulator.predictions)
    results: list[lms.PredictionResult[str]] = []
    # A fresh client: both consumers wait while its socket opens.
    async with lms.LMStudioClient(simulator.base_url) as fresh:
        llm = await fresh.llm.model(MODEL)
        await fresh.aclose()
    async with lms.LMStudioClient(simulator.base_url) as client:
        prediction = lms.LLM(client, llm.info).respond("go")

        async def await_it() -> None:
            results.append(await prediction)

        async def enter_it() -> None:
            async with prediction:
                results.append(await prediction.result())

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(await_it)
                tg.start_soon(enter_it)
    assert [r.content for r in results] == [CONTENT, CONTENT]
    assert len(simulator.predictions) == before + 1, "one handle, one server prediction"


async def test_a_cancelled_waiter_leaves_the_opening_to_another_waiter(
    simulator: Simulator,
) -> None:
    simulator.script(MODEL, ScriptedReply(content=CONTENT, tokens_per_second=100))
    async with lms.LMStudioClient(simulator.base_url, max_concurrent_predictions=1) as client:
        llm = await client.llm.model(MODEL)
        blocker = asyncio.create_task(llm.respond("block").result())  # holds the only slot
        await simulator.wait_for(lambda: len(simulator.predictions) == 1)
        prediction = llm.respond("go")
        first = asyncio.create_task(prediction.result())  # queued for the slot
        await simulator.wait_for(lambda: prediction._opening)
        second = asyncio.create_task(prediction.result())
        await simulator.wait_for(lambda: prediction._result_waiters == 2)
        first.cancel()  # e.g. its wait_for timed out
        with anyio.fail_after(10):
            result = await second
            await blocker
        assert first.cancelled()
        assert result.content == "You said: go"
        assert len(simulator.predictions) == 2, "one handle, one server prediction"


async def test_a_cancelled_reader_leaves_the_stream_to_another_waiter(
    simulator: Simulator, model: lms.LLM
) -> None:
    _script(simulator, tokens_per_second=200)
    prediction = model.respond("go")
    first = asyncio.create_task(prediction.result())
    await simulator.wait_for(lambda: len(prediction.content) > 0)
    second = asyncio.create_task(prediction.result())
    await simulator.wait_for(lambda: prediction._result_waiters == 2)
    first.cancel()
    with anyio.fail_after(10):
        result = await second
    assert result.content == CONTENT
    assert result.stats.stop_reason == "eosFound"
    assert _cancels(simulator) == 0


async def test_cancelling_every_waiter_still_stops_the_prediction(
    simulator: Simulator, client: lms.LMStudioClient, model: lms.LLM
) -> None:
    _script(simulator, tokens_per_second=200)
    prediction = model.respond("go")
    waiters = [asyncio.create_task(prediction.result()) for _ in range(2)]
    await simulator.wait_for(lambda: len(prediction.content) > 0)
    for waiter in waiters:
        waiter.cancel()
    await asyncio.wait(waiters)
    await simulator.wait_for(lambda: _cancels(simulator) == 1)
    await simulator.wait_for(lambda: client._open_channel_count() == 0)
    with pytest.raises(lms.LMStudioCancelledError):
        await prediction


# -- item 3: peeking never stops the prediction, whatever comes next; `break` does ----------


async def _peek(prediction: lms.PredictionStream[str], how: str) -> lms.PredictionFragment:
    if how == "wait_for":
        return await asyncio.wait_for(anext(aiter(prediction)), 5)
    if how == "create_task":
        return await asyncio.create_task(anext(aiter(prediction)))  # type: ignore[arg-type]
    first = await anext(aiter(prediction))
    if how == "then_an_await":
        await asyncio.sleep(0)  # e.g. sending the first fragment to a websocket
    return first


@pytest.mark.parametrize("how", ["plain", "wait_for", "create_task", "then_an_await"])
async def test_peeking_then_iterating_continues_the_prediction(
    simulator: Simulator, model: lms.LLM, how: str
) -> None:
    _script(simulator, tokens_per_second=400)
    prediction = model.respond("go")
    with anyio.fail_after(10):
        first = await _peek(prediction, how)
        rest = [fragment.content async for fragment in prediction]
    assert first.content + "".join(rest) == CONTENT
    result = await prediction
    assert result.stats.stop_reason == "eosFound"
    assert _cancels(simulator) == 0


@pytest.mark.parametrize("how", ["plain", "wait_for", "create_task", "then_an_await"])
async def test_peeking_then_awaiting_the_result_continues_the_prediction(
    simulator: Simulator, model: lms.LLM, how: str
) -> None:
    _script(simulator, tokens_per_second=400)
    prediction = model.respond("go")
    with anyio.fail_after(10):
        first = await _peek(prediction, how)
        result = await prediction
    assert CONTENT.startswith(first.content)
    assert result.content == CONTENT
    assert result.stats.stop_reason == "eosFound"
    assert _cancels(simulator) == 0


async def test_a_peeked_prediction_stops_when_its_handle_is_dropped(
    simulator: Simulator, client: lms.LMStudioClient, model: lms.LLM
) -> None:
    _script(simulator, tokens_per_second=200)
    prediction = model.respond("go")
    await anext(aiter(prediction))
    del prediction
    gc.collect()
    await simulator.wait_for(lambda: _cancels(simulator) == 1)
    await simulator.wait_for(lambda: client._open_channel_count() == 0)


async def test_break_still_stops_the_prediction(
    simulator: Simulator, client: lms.LMStudioClient, model: lms.LLM
) -> None:
    _script(simulator, tokens_per_second=200)
    prediction = model.respond("go")
    async for _ in prediction:
        break
    result = await prediction
    assert result.stats.stop_reason == "userStopped"
    await simulator.wait_for(lambda: _cancels(simulator) == 1)
    await simulator.wait_for(lambda: client._open_channel_count() == 0)


async def test_a_return_out_of_the_loop_stops_the_prediction(
    simulator: Simulator, model: lms.LLM
) -> None:
    _script(simulator, tokens_per_second=200)
    prediction = model.respond("go")

    async def first_one() -> str:
        async for fragment in prediction:
            return fragment.content
        raise AssertionError("no fragment")

    await first_one()
    result = await prediction
    assert result.stats.stop_reason == "userStopped"
    await simulator.wait_for(lambda: _cancels(simulator) == 1)


# -- item 4: a finalizer on another thread hands over to the client's loop ---------------------


async def test_a_loop_collected_on_another_threads_loop_still_cancels(
    simulator: Simulator, client: lms.LMStudioClient, model: lms.LLM
) -> None:
    _script(simulator, tokens_per_second=200)
    prediction = model.respond("go")
    await anext(aiter(prediction))  # started; a peek does not stop it
    stall: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def loop() -> None:
        async for _ in prediction:
            await stall

    # Driven by hand into its loop body, the coroutine alone holds the loop's iterator.
    coroutine = loop()
    waiting_on = coroutine.send(None)
    while waiting_on is not stall:
        await asyncio.wait([waiting_on])  # the loop's first step waits for a fragment
        waiting_on = coroutine.send(None)
    # Only the cycle collector can free the coroutine now, and it runs on the other thread.
    cycle: list[object] = [coroutine]
    cycle.append(cycle)
    del coroutine, cycle
    loop_ = asyncio.get_running_loop()
    # Debug mode makes a non-thread-safe call into this loop from another thread raise.
    loop_.set_debug(True)
    gc.disable()
    try:

        async def collect() -> None:
            gc.collect()

        await anyio.to_thread.run_sync(asyncio.run, collect())
    finally:
        gc.enable()
        loop_.set_debug(False)
    # The break reached the client's loop: the cancel is sent, the writer still works.
    await simulator.wait_for(lambda: _cancels(simulator) == 1)
    result = await prediction
    assert result.stats.stop_reason == "userStopped"
    with anyio.fail_after(10):
        assert (await model.respond("next")).content == "You said: next"

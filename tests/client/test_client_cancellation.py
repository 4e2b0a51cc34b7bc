"""Every way of leaving a prediction unfinished cancels it server-side and leaks nothing."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable

import anyio
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import Faults, ScriptedReply, Simulator

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"
LONG_REPLY = " ".join(f"word{i}" for i in range(400))


def _slow_reply() -> ScriptedReply:
    # Paced so that the prediction is reliably still running when the test abandons it.
    return ScriptedReply(content=LONG_REPLY, tokens_per_second=200)


async def _assert_cancelled_and_released(sim: Simulator, client: lms.LMStudioClient) -> None:
    await sim.wait_for(lambda: bool(sim.predictions) and sim.predictions[-1].cancel_received)
    await sim.wait_for(lambda: sim.open_channel_count() == 0)
    await sim.wait_for(lambda: client._open_channel_count() == 0)
    record = sim.predictions[-1]
    assert record.status == "cancelled"
    assert record.fragments_sent < len(LONG_REPLY.split())
    cancels = [
        f
        for f in sim.frames_received("llm")
        if f.get("type") == "channelSend" and f["message"] == {"type": "cancel"}
    ]
    assert len(cancels) == 1, "cancel is sent exactly once"


async def test_break_out_of_async_for(
    simulator: Simulator, client: lms.LMStudioClient, model: lms.LLM
) -> None:
    simulator.script(MODEL, _slow_reply())
    prediction = model.respond("go")
    async for _ in prediction:
        break
    await _assert_cancelled_and_released(simulator, client)
    # The handle stays usable: the result is the partial answer, stopped by the user.
    result = await prediction.result()
    assert result.stats.stop_reason == "userStopped"
    assert LONG_REPLY.startswith(result.content)


async def test_task_cancellation(
    simulator: Simulator, client: lms.LMStudioClient, model: lms.LLM
) -> None:
    simulator.script(MODEL, _slow_reply())
    started = anyio.Event()

    async def consume() -> None:
        async for _ in model.respond("go"):
            started.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await started.wait()
        tg.cancel_scope.cancel()
    await _assert_cancelled_and_released(simulator, client)


async def test_timeout_around_the_stream(
    simulator: Simulator, client: lms.LMStudioClient, model: lms.LLM
) -> None:
    simulator.script(MODEL, _slow_reply())
    prediction = model.respond("go")
    with anyio.move_on_after(0.1):
        await prediction
    await _assert_cancelled_and_released(simulator, client)
    with pytest.raises(lms.LMStudioCancelledError):
        await prediction.result()


async def test_leaving_async_with(
    simulator: Simulator, client: lms.LMStudioClient, model: lms.LLM
) -> None:
    simulator.script(MODEL, _slow_reply())
    async with model.respond("go") as prediction:
        async for _ in prediction:
            break
    await _assert_cancelled_and_released(simulator, client)


async def test_dropping_the_handle(
    simulator: Simulator, client: lms.LMStudioClient, model: lms.LLM
) -> None:
    simulator.script(MODEL, _slow_reply())
    prediction = model.respond("go")
    iterator = aiter(prediction)
    await anext(iterator)
    del iterator, prediction
    gc.collect()
    await _assert_cancelled_and_released(simulator, client)


async def test_an_exception_in_a_callback(
    simulator: Simulator, client: lms.LMStudioClient, model: lms.LLM
) -> None:
    simulator.script(MODEL, _slow_reply())

    def explode(fragment: lms.PredictionFragment) -> None:
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        await model.respond("go", on_prediction_fragment=explode)
    await _assert_cancelled_and_released(simulator, client)


async def test_explicit_cancel_ends_iteration_with_partial_result(
    simulator: Simulator, client: lms.LMStudioClient, model: lms.LLM
) -> None:
    simulator.script(MODEL, _slow_reply())
    prediction = model.respond("go")
    seen = []
    async for fragment in prediction:
        seen.append(fragment.content)
        if len(seen) == 3:
            await prediction.cancel()
            await prediction.cancel()  # idempotent: still one cancel on the wire
    result = await prediction.result()
    assert result.stats.stop_reason == "userStopped"
    assert result.content == "".join(seen)
    assert len(seen) >= 3
    await _assert_cancelled_and_released(simulator, client)


async def test_cancel_after_the_server_finished_sends_nothing(
    simulator: Simulator, model: lms.LLM
) -> None:
    prediction = model.respond("Hello")
    result = await prediction
    await prediction.cancel()
    assert result.stats.stop_reason == "eosFound"
    # A round trip on the same socket: anything cancel() sent has reached the server by now.
    await model.get_info()
    assert not any(
        f.get("type") == "channelSend" and f["message"] == {"type": "cancel"}
        for f in simulator.frames_received("llm")
    )


async def test_cancel_before_start_stops_at_once(simulator: Simulator, model: lms.LLM) -> None:
    simulator.script(MODEL, _slow_reply())
    prediction = model.respond("go")
    await prediction.cancel()
    assert simulator.predictions == []  # nothing was sent yet: predictions start lazily
    result = await prediction
    assert result.stats.stop_reason == "userStopped"


async def test_a_never_started_prediction_sends_nothing(
    simulator: Simulator, model: lms.LLM
) -> None:
    before = len(simulator.frames_received("llm"))
    prediction = model.respond("never run")
    del prediction
    gc.collect()
    await anyio.sleep(0.05)
    assert len(simulator.frames_received("llm")) == before


@pytest.mark.parametrize("point", ["before_first_fragment", "mid_stream"])
async def test_cancellation_during_a_stall(
    simulator: Simulator, client: lms.LMStudioClient, model: lms.LLM, point: str
) -> None:
    stall_after = 0 if point == "before_first_fragment" else 3
    simulator.script(
        MODEL, ScriptedReply(content=LONG_REPLY, faults=Faults(stall_after_fragments=stall_after))
    )
    consume: Callable[[], Awaitable[object]] = model.respond("go").result
    with anyio.move_on_after(0.2) as scope:
        await consume()
    assert scope.cancelled_caught
    await simulator.wait_for(lambda: simulator.predictions[-1].cancel_received)
    await simulator.wait_for(lambda: client._open_channel_count() == 0)
    await simulator.wait_for(lambda: simulator.open_channel_count() == 0)


async def test_cancelling_the_task_around_the_client_still_cancels_server_side(
    simulator: Simulator,
) -> None:
    simulator.script(MODEL, _slow_reply())
    started = anyio.Event()

    async def app() -> None:
        async with lms.LMStudioClient(simulator.base_url) as client:
            model = await client.llm.model(MODEL)
            async for _ in model.respond("go"):
                started.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(app)
        await started.wait()
        tg.cancel_scope.cancel()
    await simulator.wait_for(lambda: simulator.predictions[-1].cancel_received)
    await simulator.wait_for(lambda: simulator.open_channel_count() == 0)

"""Cancelling ``act()`` mid-tool or mid-prediction leaves nothing running on either side."""

from __future__ import annotations

import anyio
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import ScriptedReply, ScriptedToolCall, Simulator

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"
LONG_REPLY = " ".join(f"word{i}" for i in range(400))


async def _assert_released(sim: Simulator, client: lms.LMStudioClient) -> None:
    await sim.wait_for(lambda: sim.open_channel_count() == 0)
    await sim.wait_for(lambda: client._open_channel_count() == 0)
    assert all(p.status != "running" for p in sim.predictions)


async def test_cancel_mid_tool(simulator: Simulator) -> None:
    simulator.script(
        MODEL,
        ScriptedReply(
            tool_calls=[
                ScriptedToolCall(name="wait_forever", arguments={"n": 1}),
                ScriptedToolCall(name="wait_forever", arguments={"n": 2}),
            ]
        ),
    )
    started = 0
    all_started = anyio.Event()
    cancelled: list[int] = []

    async def wait_forever(n: int) -> None:
        nonlocal started
        started += 1
        if started == 2:
            all_started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(n)
            raise

    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        async with anyio.create_task_group() as group:

            async def run() -> None:
                await model.act("Go", [wait_forever], max_parallel_tool_calls=2)
                pytest.fail("act() returned although its tools never finish")

            group.start_soon(run)
            with anyio.fail_after(5):
                await all_started.wait()
            group.cancel_scope.cancel()
        assert sorted(cancelled) == [1, 2]
        await _assert_released(simulator, client)
        assert len(simulator.predictions) == 1  # no further round was started
        assert simulator.predictions[0].status == "finished"


async def test_cancel_mid_prediction(simulator: Simulator) -> None:
    simulator.script(
        MODEL,
        ScriptedReply(tool_calls=[ScriptedToolCall(name="noop", arguments={})]),
        ScriptedReply(content=LONG_REPLY, tokens_per_second=200),
    )
    second_round_streaming = anyio.Event()

    def noop() -> str:
        """Do nothing."""
        return "ok"

    def on_fragment(fragment: lms.PredictionFragment, round_index: int) -> None:
        if round_index == 1:
            second_round_streaming.set()

    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        with anyio.move_on_after(10) as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(
                    lambda: model.act("Go", [noop], on_prediction_fragment=on_fragment)
                )
                await second_round_streaming.wait()
                group.cancel_scope.cancel()
        assert not scope.cancelled_caught
        await simulator.wait_for(lambda: simulator.predictions[-1].cancel_received)
        await _assert_released(simulator, client)
        record = simulator.predictions[-1]
        assert record.status == "cancelled"
        assert 0 < record.fragments_sent < len(LONG_REPLY.split())
        # The client still works afterwards.
        assert (await model.respond("Hi")).content == "You said: Hi"


async def test_timeout_around_act_cancels(simulator: Simulator) -> None:
    simulator.script(MODEL, ScriptedReply(content=LONG_REPLY, tokens_per_second=100))
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        with anyio.move_on_after(0.3):
            await model.act("Go", [])
        await simulator.wait_for(lambda: simulator.predictions[-1].cancel_received)
        await _assert_released(simulator, client)

"""A simulator that has served many predictions stays as fast as a fresh one.

Every model lookup asks which instances are busy (an idle one past its TTL is unloaded).
Answering that by walking every prediction ever recorded made each prediction cost more than
the one before: a benchmark server that had run tens of thousands of predictions took over two
minutes to start 10,000 more. These tests keep a past prediction in the history that fails
the test if anything reads it while new work is served.
"""

from __future__ import annotations

import dataclasses

import pytest

import lmstudio_async as lms
from lmstudio_async.testing import Faults, PredictionRecord, Simulator

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"


@dataclasses.dataclass(eq=False)
class _UntouchableRecord(PredictionRecord):
    """A finished prediction from long ago: reading its status means walking the history."""

    def __getattribute__(self, name: str) -> object:
        if name == "status":
            raise AssertionError("the simulator walked its whole prediction history")
        return super().__getattribute__(name)


def _past_prediction() -> PredictionRecord:
    return _UntouchableRecord(
        connection_id=0,
        channel_id=1,
        endpoint="predict",
        model_identifier=MODEL,
        history=None,
        raw_prompt="long ago",
        config_stack={"layers": []},
    )


async def test_predictions_do_not_walk_the_history_of_past_predictions() -> None:
    async with Simulator() as sim, lms.LMStudioClient(f"ws://127.0.0.1:{sim.port}") as client:
        model = await client.llm.model(MODEL)
        sim.predictions.append(_past_prediction())
        result = await model.respond("hello")
        assert result.content
        assert (await model.get_processing_state()).status == "idle"
        assert sim.predictions[-1].status == "finished"


async def test_processing_state_counts_the_running_predictions_of_that_model() -> None:
    async with Simulator() as sim, lms.LMStudioClient(f"ws://127.0.0.1:{sim.port}") as client:
        model = await client.llm.model(MODEL)
        sim.predictions.append(_past_prediction())
        sim.faults = Faults(stall_after_fragments=1)
        first, second = model.respond("one"), model.respond("two")
        await anext(aiter(first))
        await anext(aiter(second))
        state = await model.get_processing_state()
        assert (state.status, state.queued) == ("generating", 2)
        await first.cancel()
        assert (await first).stats.stop_reason == "userStopped"
        assert (await model.get_processing_state()).queued == 1
        await second.cancel()
        await second
        state = await model.get_processing_state()
        assert (state.status, state.queued) == ("idle", 0)

"""``prediction.server_sent_events()``: what a browser's EventSource receives."""

from __future__ import annotations

import json
from typing import Any

import pytest

import lmstudio_async as lms
from lmstudio_async.testing import ScriptedReply, Simulator

pytestmark = pytest.mark.anyio


def parse(event: str) -> tuple[str, Any]:
    """(event name, decoded data) of one SSE event, as EventSource would see it."""
    assert event.endswith("\n\n"), event
    name, data = "message", None
    for line in event[:-2].split("\n"):
        field, _, value = line.partition(": ")
        if field == "event":
            name = value
        else:
            assert field == "data", event
            data = json.loads(value)
    return name, data


async def test_fragments_then_done_with_the_stats(simulator: Simulator, model: lms.LLM) -> None:
    # A newline inside a fragment must not end the event early: data stays on one line.
    fragments = ["First line\n", "second: line\n\n", "end"]
    simulator.script("qwen2.5-7b-instruct", ScriptedReply(fragments=fragments))
    raw = [e async for e in model.respond("Hi").server_sent_events()]
    assert all(e.count("\n\n") == 1 for e in raw), raw
    assert not any("null" in e for e in raw), raw  # no field LM Studio left out, as null
    events = [parse(e) for e in raw]
    assert events[:-1] == [("message", f) for f in fragments]
    assert events[-1][0] == "done"
    assert events[-1][1]["stopReason"] == "eosFound"
    assert events[-1][1]["predictedTokensCount"] > 0


async def test_reasoning_fragments_are_their_own_events(client: lms.LMStudioClient) -> None:
    model = await client.llm.model("qwen3-4b-thinking")
    events = [parse(e) async for e in model.respond("Hi").server_sent_events()]
    reasoning = "".join(data for name, data in events if name == "reasoning")
    answer = "".join(data for name, data in events if name == "message")
    assert reasoning == "The user wants a reply. I will answer: You said: Hi"
    assert answer == "You said: Hi"
    assert "<think>" not in reasoning + answer  # the tags are structural


async def test_closing_the_events_early_cancels_the_prediction_in_lm_studio(
    simulator: Simulator, model: lms.LLM
) -> None:
    story = " ".join(f"word{n}" for n in range(500))
    simulator.script("qwen2.5-7b-instruct", ScriptedReply(content=story, tokens_per_second=200))
    events = model.respond("Tell me a story").server_sent_events()
    async for event in events:
        if "word2" in event:
            break
    await events.aclose()  # what a framework does on disconnect
    await simulator.wait_for(lambda: simulator.predictions[-1].cancel_received, timeout=10)
    assert simulator.predictions[-1].fragments_sent < 500


async def test_a_failed_prediction_ends_with_an_error_event_and_raises(
    simulator: Simulator, model: lms.LLM
) -> None:
    failure = {"title": "The model crashed", "cause": "Out of memory"}
    simulator.script("qwen2.5-7b-instruct", ScriptedReply(error=failure))
    seen: list[tuple[str, Any]] = []

    async def consume() -> None:
        async for event in model.respond("Hi").server_sent_events():
            seen.append(parse(event))

    with pytest.raises(lms.LMStudioServerError, match="The model crashed"):
        await consume()
    assert seen[-1] == ("error", {"message": "The model crashed Cause: Out of memory"})


@pytest.mark.parametrize("consume", ["awaited", "iterated", "partly iterated"])
async def test_events_of_an_already_consumed_prediction_are_refused(
    simulator: Simulator, model: lms.LLM, consume: str
) -> None:
    simulator.script("qwen2.5-7b-instruct", ScriptedReply(fragments=["a", "b", "c"]))
    prediction = model.respond("Hi")
    if consume == "awaited":
        await prediction
    elif consume == "iterated":
        async for _ in prediction:
            pass
    else:
        async for _ in prediction:
            break
    events = prediction.server_sent_events()
    with pytest.raises(lms.LMStudioUsageError, match="already iterated or awaited"):
        await events.__anext__()
    await prediction.cancel()

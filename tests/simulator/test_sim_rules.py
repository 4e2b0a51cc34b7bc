"""Rules: replies aimed at predictions by what they ask, first match wins."""

from __future__ import annotations

import re
from typing import Any

import anyio
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import (
    PredictionRequest,
    ScriptedReply,
    ScriptedToolCall,
    Simulator,
)

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"


async def test_a_nested_prediction_from_a_tool_gets_the_reply_aimed_at_it() -> None:
    async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
        model = await client.llm.model(MODEL)
        # Outer rounds: the queue. The nested call takes a rule; with the queue alone it would
        # have taken "All done." and the outer act() would have had no second-round reply.
        sim.script(
            MODEL,
            ScriptedReply(tool_calls=[ScriptedToolCall("summarize", {"text": "long text"})]),
            ScriptedReply(content="All done."),
        )
        sim.add_rule(ScriptedReply(content="short"), last_user_message=r"^Summarize:")

        async def summarize(text: str) -> str:
            """Summarize text with the model itself."""
            return (await model.respond(f"Summarize: {text}")).content

        result = await model.act("Please summarize", [summarize])
    assert result.rounds[0].tool_calls[0].value == "short"
    assert result.content == "All done."
    assert [p.content for p in sim.predictions] == ["", "short", "All done."]


async def test_conditions_role_tools_endpoint_model_and_times() -> None:
    async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
        after_tool = sim.add_rule(ScriptedReply(content="after tool"), last_message_role="tool")
        sim.add_rule(ScriptedReply(content="raw"), endpoint="completeRawText")
        sim.add_rule(ScriptedReply(content="other model"), model="no-such-model")
        sim.add_rule(ScriptedReply(content="once"), has_tools=False, times=1)
        model = await client.llm.model(MODEL)
        assert (await model.complete("abc")).content == "raw"
        assert (await model.respond("hi")).content == "once"
        # `times=1` used up: the default model answers again.
        assert (await model.respond("hi")).content == "You said: hi"
        sim.script(MODEL, ScriptedReply(tool_calls=[ScriptedToolCall("ping")]))

        def ping() -> str:
            """Ping."""
            return "pong"

        result = await model.act("go", [ping])
    assert result.content == "after tool"
    assert after_tool.used == 1


async def test_a_responder_sees_the_request_and_may_pass() -> None:
    seen: list[PredictionRequest] = []

    def pass_on(request: PredictionRequest) -> ScriptedReply | None:
        seen.append(request)
        return None

    async def shout(request: PredictionRequest) -> ScriptedReply:
        return ScriptedReply(content=(request.last_user_message or "").upper())

    async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
        sim.add_rule(pass_on)
        sim.add_rule(shout, last_user_message=re.compile("quiet"))
        model = await client.llm.model(MODEL)
        loud = await model.respond("be quiet", config={"temperature": 0.25})
        plain = await model.respond("hello")
    assert loud.content == "BE QUIET"
    assert plain.content == "You said: hello"
    first = seen[0]
    assert (first.endpoint, first.model, first.model_key) == ("predict", MODEL, MODEL)
    assert first.last_message_role == "user"
    assert first.config["llm.prediction.temperature"] == 0.25
    assert first.tools == []
    assert first.history is not None


async def test_a_times_1_rule_answers_one_of_two_concurrent_predictions() -> None:
    # The use is counted when the rule matches, not after its async responder returns: the
    # second prediction arrives while the first is still inside the responder.
    calls = 0
    gate = anyio.Event()

    async def slow(request: PredictionRequest) -> ScriptedReply:
        nonlocal calls
        calls += 1
        if calls == 1:
            await gate.wait()
        return ScriptedReply(content="ONCE")

    async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
        rule = sim.add_rule(slow, times=1)
        model = await client.llm.model(MODEL)
        first: list[str] = []

        async def ask_first() -> None:
            first.append((await model.respond("a")).content)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask_first)
            await sim.wait_for(lambda: calls == 1)
            second = (await model.respond("b")).content
            gate.set()
    assert (first, second) == (["ONCE"], "You said: b")
    assert (calls, rule.used) == (1, 1)


async def test_a_responder_that_passes_or_fails_gives_its_use_back() -> None:
    async def fail_once(request: PredictionRequest) -> ScriptedReply | None:
        if request.last_user_message == "boom":
            raise RuntimeError("responder bug")
        return None if request.last_user_message == "pass" else ScriptedReply(content="ok")

    async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
        rule = sim.add_rule(fail_once, times=1)
        model = await client.llm.model(MODEL)
        with pytest.raises(lms.LMStudioServerError):
            await model.respond("boom")
        assert (await model.respond("pass")).content == "You said: pass"
        assert rule.used == 0
        assert (await model.respond("go")).content == "ok"
        assert (await model.respond("go")).content == "You said: go"
    assert rule.used == 1


async def test_rules_come_before_the_queue_which_comes_before_the_default() -> None:
    async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
        sim.script(MODEL, ScriptedReply(content="queued"))
        sim.add_rule(ScriptedReply(content="ruled"), last_user_message="rule")
        model = await client.llm.model(MODEL)
        replies = [(await model.respond(text)).content for text in ("rule", "x", "y")]
    assert replies == ["ruled", "queued", "You said: y"]


async def test_a_responder_returning_the_wrong_type_fails_that_prediction_visibly() -> None:
    async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
        sim.add_rule(lambda request: "not a reply")  # type: ignore[arg-type,return-value]
        model = await client.llm.model(MODEL)
        with pytest.raises(lms.LMStudioServerError, match="return a ScriptedReply or None"):
            await model.respond("hi")


def test_bad_rule_arguments_are_refused() -> None:
    sim = Simulator()
    with pytest.raises(ValueError, match="endpoint must be one of"):
        sim.add_rule(ScriptedReply(), endpoint="chat")
    with pytest.raises(ValueError, match="times must be at least 1"):
        sim.add_rule(ScriptedReply(), times=0)
    with pytest.raises(ValueError, match="times must be at least 1 \\(a whole number\\), not True"):
        sim.add_rule(ScriptedReply(), times=True)
    with pytest.raises(ValueError, match="model must be an instance identifier"):
        sim.add_rule(ScriptedReply(), model="")
    with pytest.raises(ValueError, match="last_message_role must be one of system, user"):
        sim.add_rule(ScriptedReply(), last_message_role="robot")
    with pytest.raises(TypeError, match="reply must be a ScriptedReply"):
        sim.add_rule("hello")  # type: ignore[arg-type]
    with pytest.raises(re.error):
        sim.add_rule(ScriptedReply(), last_user_message="(")
    assert sim.rules == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time_to_first_token": -1.0}, "time_to_first_token must be 0 or more seconds"),
        ({"time_to_first_token": float("inf")}, "time_to_first_token must be a finite number"),
        ({"tokens_per_second": 0}, "tokens_per_second must be more than 0 per second"),
        ({"tokens_per_second": -5.0}, "tokens_per_second must be more than 0"),
        ({"prompt_tokens_per_second": float("nan")}, "prompt_tokens_per_second must be a finite"),
        ({"prompt_tokens": -1}, "prompt_tokens must be a whole number, 0 or more"),
    ],
)
def test_bad_pacing_in_a_scripted_reply_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"ScriptedReply.{message}"):
        ScriptedReply(**kwargs)

"""Prediction features of today's LM Studio: log-probabilities, stop strings, prompt details,
and the newer config keys on the wire."""

from __future__ import annotations

from typing import Any

import pytest

import lmstudio_async as lms
from lmstudio_async.testing import ScriptedReply, Simulator
from lmstudio_async.types import PromptProcessingDetails

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"


def sent_fields(sim: Simulator) -> dict[str, Any]:
    layers = sim.predictions[-1].config_stack["layers"]
    return {f["key"]: f["value"] for layer in layers for f in layer["config"]["fields"]}


async def test_log_probs_give_every_token_with_its_candidates(model: lms.LLM) -> None:
    fragments: list[lms.PredictionFragment] = []
    prediction = model.respond("Say hello, world", config={"log_probs": 3})
    async for fragment in prediction:
        fragments.append(fragment)
    result = await prediction.result()
    assert result.prediction_config.log_probs == 3
    for fragment in fragments:
        assert fragment.tokens is not None
        assert "".join(t.text for t in fragment.tokens) == fragment.content
        for token in fragment.tokens:
            assert token.log_prob is not None
            assert token.log_prob <= 0
            assert token.candidates is not None
            assert len(token.candidates) == 3
            best = token.candidates[0]
            assert (best.text, best.id, best.log_prob) == (token.text, token.id, token.log_prob)
            probs = [c.log_prob for c in token.candidates]
            assert probs == sorted(probs, reverse=True)
    assert "".join(t.text for f in fragments for t in f.tokens or []) == result.content


async def test_without_log_probs_fragments_carry_no_tokens(model: lms.LLM) -> None:
    fragments = [f async for f in model.respond("Say hello")]
    assert fragments
    assert all(f.tokens is None for f in fragments)


async def test_the_stop_string_that_ended_a_prediction_is_reported(model: lms.LLM) -> None:
    result = await model.respond("alpha beta gamma", config={"stop_strings": ["zeta", "gamma"]})
    assert result.stats.stop_reason == "stopStringFound"
    assert result.stats.stop_string == "gamma"
    plain = await model.respond("alpha beta")
    assert plain.stats.stop_string is None


async def test_prompt_progress_callbacks_taking_two_arguments_get_the_details(
    simulator: Simulator, model: lms.LLM
) -> None:
    simulator.script(MODEL, ScriptedReply(content="ok", prompt_tokens=12))
    seen: list[tuple[float, PromptProcessingDetails | None]] = []
    one_argument: list[float] = []

    def with_details(progress: float, details: PromptProcessingDetails | None) -> None:
        seen.append((progress, details))

    await model.respond("Hi", on_prompt_processing_progress=with_details)
    await model.respond("Hi", on_prompt_processing_progress=one_argument.append)
    assert [p for p, _ in seen] == [0.0, 1.0] == one_argument
    first, last = (d for _, d in seen)
    assert first is not None
    assert last is not None
    assert (first.total_prompt_token_count, first.processed_prompt_token_count) == (12, 0)
    assert (last.processed_prompt_token_count, last.unprocessed_prompt_token_count) == (12, 0)
    assert last.cached_token_count == 0


async def test_newer_prediction_keys_reach_lm_studio(simulator: Simulator, model: lms.LLM) -> None:
    await model.respond(
        "Think briefly",
        config={
            "tool_choice": "required",
            "enable_thinking": False,
            "reasoning_budget": 256,
            "presence_penalty": 0.5,
            "log_probs": 2,
        },
    )
    fields = sent_fields(simulator)
    assert fields["llm.prediction.toolChoice"] == {"type": "generic", "mode": "required"}
    assert fields["llm.prediction.reasoning.enableThinking"] is False
    assert fields["llm.prediction.reasoning.budgetTokens"] == {"checked": True, "value": 256}
    assert fields["llm.prediction.llama.presencePenalty"] == {"checked": True, "value": 0.5}
    assert fields["llm.prediction.logProbs"] == {"checked": True, "value": 2}


async def test_a_thinking_model_told_not_to_think_answers_directly(
    client: lms.LMStudioClient,
) -> None:
    model = await client.llm.model("qwen3-4b-thinking")
    thinking = await model.respond("Hi")
    direct = await model.respond("Hi", config={"enable_thinking": False})
    assert thinking.reasoning_content
    assert direct.reasoning_content == ""
    assert direct.content == "You said: Hi"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"tool_choice": "required"}, "cannot call tools"),
        ({"raw_tools": {"type": "none"}}, "cannot call tools"),
        ({"reasoning_budget": 128}, "does not apply a reasoning_budget"),
    ],
    ids=["tool_choice", "raw_tools", "reasoning_budget"],
)
async def test_complete_refuses_options_raw_text_cannot_honour(
    simulator: Simulator, model: lms.LLM, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(lms.LMStudioUsageError, match=message):
        model.complete("Once upon a time", config=config)
    assert simulator.predictions == []
    assert (await model.complete("Once", config={"reasoning_budget": False})).content

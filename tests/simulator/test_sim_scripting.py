"""Scripted replies and the deterministic default model."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sim_helpers import predict_parameter, raw_client

from lmstudio_async.testing import (
    ModelSpec,
    ScriptedReply,
    ScriptedToolCall,
    Simulator,
    default_catalog,
    default_reply,
)
from lmstudio_async.testing._models import instance_for_schema, split_words

LLM = "qwen2.5-7b-instruct"


async def _predict(
    sim: Simulator, text: str = "hi", fields: list[dict[str, Any]] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    async with raw_client(sim) as client:
        channel = await client.create_channel("predict", predict_parameter(text, fields=fields))
        return await client.channel_packets(channel)


def _fragments(packets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p["fragment"] for p in packets if p["type"] == "fragment"]


@pytest.mark.anyio
async def test_explicit_fragments_and_stop_reason(simulator: Simulator) -> None:
    simulator.script(LLM, ScriptedReply(fragments=["Hel", "lo", "!"], stop_reason="toolCalls"))
    packets, _ = await _predict(simulator)
    assert [f["content"] for f in _fragments(packets)] == ["Hel", "lo", "!"]
    assert packets[-1]["stats"]["stopReason"] == "toolCalls"
    assert simulator.predictions[-1].content == "Hello!"


@pytest.mark.anyio
async def test_reasoning_is_wrapped_in_structural_tags(simulator: Simulator) -> None:
    simulator.script(LLM, ScriptedReply(reasoning="hmm ok", content="Yes."))
    packets, _ = await _predict(simulator)
    shape = [(f["content"], f["reasoningType"], f["isStructural"]) for f in _fragments(packets)]
    assert shape == [
        ("<think>", "reasoningStartTag", True),
        ("hmm ", "reasoning", False),
        ("ok", "reasoning", False),
        ("</think>", "reasoningEndTag", True),
        ("Yes.", "none", False),
    ]


@pytest.mark.anyio
async def test_reasoning_parsing_disabled_streams_tags_as_plain_content(
    simulator: Simulator,
) -> None:
    simulator.script(LLM, ScriptedReply(reasoning="hmm", content="Yes."))
    parsing = {"enabled": False, "startString": "<t>", "endString": "</t>"}
    packets, _ = await _predict(
        simulator, fields=[{"key": "llm.prediction.reasoning.parsing", "value": parsing}]
    )
    shape = [(f["content"], f["reasoningType"], f["isStructural"]) for f in _fragments(packets)]
    assert shape == [
        ("<t>", "none", False),
        ("hmm", "none", False),
        ("</t>", "none", False),
        ("Yes.", "none", False),
    ]


@pytest.mark.anyio
async def test_enable_thinking_false_drops_the_default_reasoning_segment() -> None:
    field = {"key": "llm.prediction.reasoning.enableThinking", "value": False}
    async with (
        Simulator(loaded=["qwen3-4b-thinking"]) as simulator,
        raw_client(simulator) as client,
    ):
        thinking = predict_parameter("hi", model="qwen3-4b-thinking")
        channel = await client.create_channel("predict", thinking)
        with_thoughts, _ = await client.channel_packets(channel)
        quiet = predict_parameter("hi", model="qwen3-4b-thinking", fields=[field])
        channel = await client.create_channel("predict", quiet)
        without, _ = await client.channel_packets(channel)
    assert any(f["reasoningType"] == "reasoning" for f in _fragments(with_thoughts))
    assert [f["reasoningType"] for f in _fragments(without)] == ["none"] * len(_fragments(without))
    assert "".join(f["content"] for f in _fragments(without)) == "You said: hi"


@pytest.mark.anyio
async def test_tool_calls_follow_content(simulator: Simulator) -> None:
    simulator.script(
        LLM,
        ScriptedReply(
            content="Calling.",
            tool_calls=[
                ScriptedToolCall(name="add", arguments={"a": 1}),
                ScriptedToolCall(name="bad", fail=True),
                ScriptedToolCall(name="mul", arguments={}, id="mine"),
            ],
        ),
    )
    packets, _ = await _predict(simulator)
    kinds = [p["type"] for p in packets]
    assert kinds[2:] == [
        "fragment",
        "toolCallGenerationStart",
        "toolCallGenerationNameReceived",
        "toolCallGenerationArgumentFragmentGenerated",
        "toolCallGenerationEnd",
        "toolCallGenerationStart",
        "toolCallGenerationFailed",
        "toolCallGenerationStart",
        "toolCallGenerationNameReceived",
        "toolCallGenerationArgumentFragmentGenerated",
        "toolCallGenerationEnd",
        "success",
    ]
    ends = [p["toolCallRequest"] for p in packets if p["type"] == "toolCallGenerationEnd"]
    assert ends[0]["name"] == "add"
    assert ends[0]["arguments"] == {"a": 1}
    assert ends[0]["id"].startswith("call_")
    assert ends[1]["id"] == "mine"
    assert packets[-1]["stats"]["stopReason"] == "eosFound"


@pytest.mark.anyio
async def test_max_tokens_and_stop_strings(simulator: Simulator) -> None:
    limit = [{"key": "llm.prediction.maxPredictedTokens", "value": {"checked": True, "value": 2}}]
    packets, _ = await _predict(simulator, "a b c", limit)
    assert "".join(f["content"] for f in _fragments(packets)) == "You said: "
    assert packets[-1]["stats"]["stopReason"] == "maxPredictedTokensReached"
    assert packets[-1]["stats"]["predictedTokensCount"] == 2

    stop = [{"key": "llm.prediction.stopStrings", "value": ["c d"]}]
    packets, _ = await _predict(simulator, "a b c d e", stop)
    assert "".join(f["content"] for f in _fragments(packets)) == "You said: a b "
    assert packets[-1]["stats"]["stopReason"] == "stopStringFound"
    assert packets[-1]["stats"]["stopString"] == "c d"
    effective = {f["key"]: f["value"] for f in packets[-1]["predictionConfig"]["fields"]}
    assert effective["llm.prediction.stopStrings"] == ["c d"]


@pytest.mark.anyio
async def test_error_reply_and_queue_order_then_default(simulator: Simulator) -> None:
    error = {"title": "Engine exploded", "rootTitle": "Engine exploded"}
    simulator.script(LLM, ScriptedReply(content="first"), ScriptedReply(error=error))
    packets, _ = await _predict(simulator)
    assert _fragments(packets)[0]["content"] == "first"
    _, end = await _predict(simulator)
    assert end["error"] == error
    packets, _ = await _predict(simulator, "again")
    text = "".join(f["content"] for f in _fragments(packets))
    assert text == default_reply(predict_parameter("again")["history"])


@pytest.mark.anyio
async def test_pacing_and_custom_catalog() -> None:
    spec = ModelSpec(model_key="tiny", display_name="Tiny")
    async with Simulator(catalog=[spec, *default_catalog()], loaded=["tiny"]) as sim:
        assert sim.loaded_identifiers() == ["tiny"]
        sim.script("tiny", ScriptedReply(content="a b c d", tokens_per_second=100.0))
        async with raw_client(sim) as client:
            channel = await client.create_channel("predict", predict_parameter("x", "tiny"))
            packets, _ = await client.channel_packets(channel)
    stats = packets[-1]["stats"]
    assert stats["totalTimeSec"] >= 0.03  # three 10 ms gaps between four fragments
    assert packets[-1]["modelInfo"]["displayName"] == "Tiny"


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "integer", "minimum": 3}}},
        {"type": "array", "items": {"type": "number"}, "minItems": 2},
        {"type": "string", "minLength": 4},
        {"type": "string", "maxLength": 3},
        {"type": "string", "minLength": 2, "maxLength": 2},
        {"type": "string", "minLength": 9, "maxLength": 12},
        {"type": "integer", "maximum": -5},
        {"type": "integer", "exclusiveMaximum": -5},
        {"type": "number", "maximum": -0.5},
        {"type": "number", "exclusiveMinimum": 2.5},
        {"type": "integer", "exclusiveMinimum": 2.5, "maximum": 7},
        {
            "type": "object",
            "properties": {
                "a": {"type": "string", "maxLength": 3},
                "n": {"type": "integer", "maximum": -5},
            },
            "required": ["a", "n"],
        },
        {"enum": ["x", "y"]},
        {"const": 7},
        {"anyOf": [{"type": "boolean"}, {"type": "string"}]},
        {
            "$defs": {"Inner": {"type": "object", "properties": {"n": {"type": "null"}}}},
            "type": "object",
            "properties": {"inner": {"$ref": "#/$defs/Inner"}},
            "required": ["inner"],
        },
    ],
)
def test_instance_for_schema_validates(schema: dict[str, Any]) -> None:
    jsonschema.validate(instance_for_schema(schema), schema)


@given(st.text())
def test_split_words_round_trips(text: str) -> None:
    assert "".join(split_words(text)) == text


def test_default_reply_after_tool_results() -> None:
    history = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "add"}]},
            {"role": "tool", "content": [{"type": "toolCallResult", "content": "3"}]},
        ]
    }
    assert default_reply(history) == "The tool returned: 3."
    assert default_reply({"messages": []}) == "Hello! I am the LM Studio simulator."

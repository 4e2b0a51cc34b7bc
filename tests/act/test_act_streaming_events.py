"""Reasoning split and tool-call streaming callbacks on ``respond()``, plus tool definitions."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import ScriptedReply, ScriptedToolCall, Simulator

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"
THINKING = "qwen3-4b-thinking"


async def test_reasoning_split_from_scripted_reply(simulator: Simulator) -> None:
    simulator.script(MODEL, ScriptedReply(reasoning="Two plus two is four.", content="4"))
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        prediction = model.respond("2+2?")
        kinds = [(f.reasoning_type, f.is_structural) async for f in prediction]
        result = await prediction
    assert kinds[0] == ("reasoningStartTag", True)
    assert ("reasoningEndTag", True) in kinds
    assert kinds[-1] == ("none", False)
    assert result.reasoning_content == "Two plus two is four."
    assert result.non_reasoning_content == "4"
    assert result.content == "<think>Two plus two is four.</think>4"


async def test_reasoning_model_and_thinking_options(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(THINKING)
        result = await model.respond(
            "Hello", config={"enable_thinking": True, "reasoning_budget": 256}
        )
    assert result.non_reasoning_content == "You said: Hello"
    assert result.reasoning_content.startswith("The user wants a reply.")
    layers = simulator.predictions[-1].config_stack["layers"]
    fields = {f["key"]: f["value"] for layer in layers for f in layer["config"]["fields"]}
    assert fields["llm.prediction.reasoning.enableThinking"] is True
    assert fields["llm.prediction.reasoning.budgetTokens"] == {"checked": True, "value": 256}


async def test_thinking_switched_off_gives_an_answer_without_reasoning(
    simulator: Simulator,
) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(THINKING)
        result = await model.respond("Hello", config={"enable_thinking": False})
    assert result.content == result.non_reasoning_content == "You said: Hello"
    assert result.reasoning_content == ""


async def test_reasoning_parsing_off_leaves_the_thoughts_in_the_content(
    simulator: Simulator,
) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(THINKING)
        prediction = model.respond(
            "Hello",
            config={"reasoning_parsing": {"enabled": False}},
        )
        kinds = {(f.reasoning_type, f.is_structural) async for f in prediction}
        result = await prediction
    assert kinds == {("none", False)}
    assert result.reasoning_content == ""
    assert result.content == result.non_reasoning_content
    assert result.content.startswith("<think>The user wants a reply.")
    assert result.content.endswith("</think>You said: Hello")


class Verdict(msgspec.Struct):
    ok: bool


async def test_structured_output_ignores_reasoning(simulator: Simulator) -> None:
    simulator.script(MODEL, ScriptedReply(reasoning="Looks fine.", content='{"ok": true}'))
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        result = await model.respond("Fine?", response_format=Verdict)
    assert result.parsed == Verdict(ok=True)


async def test_tool_call_events_on_respond(simulator: Simulator) -> None:
    simulator.script(
        MODEL,
        ScriptedReply(
            content="Calling.",
            tool_calls=[
                ScriptedToolCall(name="add", arguments={"a": 1, "b": 2}, id="t1"),
                ScriptedToolCall(name="add", fail=True, id="t2"),
                ScriptedToolCall(name="mul", arguments={"x": 3}, id="t3"),
            ],
        ),
    )
    events: list[tuple[Any, ...]] = []

    async def on_end(index: int, request: lms.types.ToolCallRequest) -> None:
        events.append(("end", index, request.name, request.id, request.arguments))

    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        result = await model.respond(
            "Do it",
            on_tool_call_request_start=lambda i, call_id: events.append(("start", i, call_id)),
            on_tool_call_request_name_received=lambda i, name: events.append(("name", i, name)),
            on_tool_call_request_argument_fragment=lambda i, text: events.append(
                ("args", i, json.loads(text))
            ),
            on_tool_call_request_end=on_end,
            on_tool_call_request_failure=lambda i, error: events.append(
                ("failure", i, type(error).__name__, str(error).splitlines()[0])
            ),
        )
    assert result.content == "Calling."  # tool call text is not part of the content
    assert events == [
        ("start", 0, "t1"),
        ("name", 0, "add"),
        ("args", 0, {"a": 1, "b": 2}),
        ("end", 0, "add", "t1", {"a": 1, "b": 2}),
        ("start", 1, "t2"),
        ("failure", 1, "LMStudioServerError", "Failed to parse tool call"),
        ("start", 2, "t3"),
        ("name", 2, "mul"),
        ("args", 2, {"x": 3}),
        ("end", 2, "mul", "t3", {"x": 3}),
    ]


class Point(msgspec.Struct):
    x: float
    y: float


def test_tool_schema_from_signature_and_docstring() -> None:
    def move(point: Point, speed: float = 1.0, *, label: str | None = None) -> str:
        """Move to a point."""
        return ""

    tool = lms.Tool.from_function(move)
    wire = tool.to_wire()
    assert wire["function"]["name"] == "move"
    assert wire["function"]["description"] == "Move to a point."
    params = wire["function"]["parameters"]
    assert params["type"] == "object"
    assert params["required"] == ["point"]
    assert params["additionalProperties"] is False
    assert params["properties"]["point"]["properties"]["x"] == {"type": "number"}
    assert params["properties"]["speed"] == {"type": "number", "default": 1.0}
    assert "$ref" not in json.dumps(params)
    assert tool.validate_arguments({"point": {"x": 1, "y": 2}}) == {
        "point": Point(1.0, 2.0),
        "speed": 1.0,
        "label": None,
    }
    with pytest.raises(lms.LMStudioToolCallError, match=r"point"):
        tool.validate_arguments({"speed": 2})


def test_unsupported_tool_parameters_fail_at_definition() -> None:
    def uses_socket(conn: object, n: int) -> None: ...

    def untyped(a, b: int) -> None: ...  # type: ignore[no-untyped-def]

    def star(*values: int) -> None: ...

    with pytest.raises(lms.LMStudioUsageError, match=r"'uses_socket', parameter 'conn'"):
        lms.Tool.from_function(uses_socket)
    with pytest.raises(lms.LMStudioUsageError, match=r"'untyped', parameter 'a' has no type"):
        lms.Tool.from_function(untyped)
    with pytest.raises(lms.LMStudioUsageError, match=r"\*args"):
        lms.Tool.from_function(star)
    with pytest.raises(lms.LMStudioUsageError, match="name="):
        lms.Tool.from_function(lambda: None)


def test_explicit_tool_definition() -> None:
    tool = lms.Tool(
        "lookup",
        "Look a word up.",
        {
            "type": "object",
            "properties": {"word": {"type": "string"}},
            "required": ["word"],
            "additionalProperties": False,
        },
        lambda word: word.upper(),
    )
    assert tool.validate_arguments({"word": "hi"}) == {"word": "hi"}
    with pytest.raises(lms.LMStudioToolCallError, match="missing"):
        tool.validate_arguments({})
    with pytest.raises(lms.LMStudioToolCallError, match="unknown"):
        tool.validate_arguments({"word": "a", "extra": 1})
    with pytest.raises(lms.LMStudioUsageError, match="type 'object'"):
        lms.Tool("bad", "", {"type": "string"}, print)

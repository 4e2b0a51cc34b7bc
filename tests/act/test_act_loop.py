"""``act()`` against scripted tool calls: the loop, parallelism, guards and bad requests."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import ScriptedReply, ScriptedToolCall, Simulator

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def _config_field(sim: Simulator, index: int, key: str) -> Any:
    layers = sim.predictions[index].config_stack["layers"]
    fields = {f["key"]: f["value"] for layer in layers for f in layer["config"]["fields"]}
    return fields.get(key)


def _messages(sim: Simulator, index: int) -> list[dict[str, Any]]:
    history = sim.predictions[index].history
    assert history is not None
    messages: list[dict[str, Any]] = history["messages"]
    return messages


async def test_two_round_tool_loop(simulator: Simulator) -> None:
    simulator.script(
        MODEL,
        ScriptedReply(
            content="Let me add those.",
            tool_calls=[ScriptedToolCall(name="add", arguments={"a": 1, "b": 3}, id="call_71")],
        ),
        ScriptedReply(content="The sum is 4."),
    )
    seen_messages: list[str] = []
    rounds: list[tuple[str, int]] = []
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        result = await model.act(
            "What is 1 + 3?",
            [add],
            on_message=lambda m: seen_messages.append(m.role),
            on_round_start=lambda i: rounds.append(("start", i)),
            on_round_end=lambda i: rounds.append(("end", i)),
        )
    assert result.content == "The sum is 4."
    assert len(result.rounds) == 2
    assert [o.value for o in result.rounds[0].tool_calls] == [4]
    assert result.rounds[1].stats.stop_reason == "eosFound"
    assert seen_messages == ["assistant", "tool", "assistant"]
    assert rounds == [("start", 0), ("end", 0), ("start", 1), ("end", 1)]
    assert [m.role for m in result.chat] == ["user", "assistant", "tool", "assistant"]
    assert result.messages == list(result.chat)[1:]

    # On the wire (§3.8): the tool is offered, and round 2 sees the call and its result.
    tools = _config_field(simulator, 0, "llm.prediction.tools")
    assert tools["type"] == "toolArray"
    assert tools["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "add",
                "description": "Add two integers.",
                "parameters": {
                    "type": "object",
                    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                    "required": ["a", "b"],
                    "additionalProperties": False,
                },
            },
        }
    ]
    assert _messages(simulator, 1)[1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me add those."},
                {
                    "type": "toolCallRequest",
                    "toolCallRequest": {
                        "type": "function",
                        "id": "call_71",
                        "name": "add",
                        "arguments": {"a": 1, "b": 3},
                    },
                },
            ],
        },
        {
            "role": "tool",
            "content": [
                {"type": "toolCallResult", "content": "4", "toolCallId": "call_71", "name": "add"}
            ],
        },
    ]


async def test_three_parallel_calls_keep_request_order(simulator: Simulator) -> None:
    calls = [
        ScriptedToolCall(name="slow_echo", arguments={"text": t, "delay": d}, id=f"c{i}")
        for i, (t, d) in enumerate([("first", 0.15), ("second", 0.05), ("third", 0.1)])
    ]
    simulator.script(MODEL, ScriptedReply(tool_calls=calls), ScriptedReply(content="done"))
    running = 0
    peak = 0
    finished: list[str] = []

    async def slow_echo(text: str, delay: float) -> str:
        """Echo after a delay."""
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await anyio.sleep(delay)
        finally:
            running -= 1
        finished.append(text)
        return text

    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        result = await model.act("Go", [slow_echo], max_parallel_tool_calls=3)
    assert peak == 3
    assert finished == ["second", "third", "first"]  # completion order differs...
    tool_message = _messages(simulator, 1)[-1]
    assert tool_message["role"] == "tool"
    # ...but results go back in request order, JSON-encoded.
    assert [(p["toolCallId"], p["content"]) for p in tool_message["content"]] == [
        ("c0", '"first"'),
        ("c1", '"second"'),
        ("c2", '"third"'),
    ]
    assert [o.value for o in result.rounds[0].tool_calls] == ["first", "second", "third"]


async def test_parallelism_is_bounded(simulator: Simulator) -> None:
    calls = [ScriptedToolCall(name="probe", arguments={}) for _ in range(4)]
    simulator.script(MODEL, ScriptedReply(tool_calls=calls), ScriptedReply(content="ok"))
    running = peak = 0

    async def probe() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.02)
        running -= 1

    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        await model.act("Go", [probe], max_parallel_tool_calls=2)
    assert peak == 2
    assert [p["content"] for p in _messages(simulator, 1)[-1]["content"]] == ["null"] * 4


async def test_denying_guard(simulator: Simulator) -> None:
    simulator.script(
        MODEL,
        ScriptedReply(
            tool_calls=[
                ScriptedToolCall(name="delete_file", arguments={"path": "/etc/passwd"}),
                ScriptedToolCall(name="delete_file", arguments={"path": "/tmp/x"}),
            ]
        ),
        ScriptedReply(content="ok"),
    )
    deleted: list[str] = []

    def delete_file(path: str) -> str:
        """Delete a file."""
        deleted.append(path)
        return "deleted"

    async def guard(request: lms.types.ToolCallRequest) -> lms.GuardDecision:
        assert request.arguments is not None
        if request.arguments["path"].startswith("/etc"):
            return lms.GuardDecision.deny("system files are off limits")
        return lms.GuardDecision.allow({"path": "/tmp/sandbox/x"})

    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        result = await model.act("Clean up", [delete_file], guard_tool_call=guard)
    assert deleted == ["/tmp/sandbox/x"]  # the guard rewrote the second call's arguments
    denied, allowed = result.rounds[0].tool_calls
    assert denied.denied_reason == "system files are off limits"
    assert allowed.value == "deleted"
    contents = [p["content"] for p in _messages(simulator, 1)[-1]["content"]]
    assert "system files are off limits" in json.loads(contents[0])["error"]
    assert contents[1] == '"deleted"'


async def test_tool_raising_is_reported_to_the_model(simulator: Simulator) -> None:
    simulator.script(
        MODEL,
        ScriptedReply(tool_calls=[ScriptedToolCall(name="divide", arguments={"a": 1, "b": 0})]),
        ScriptedReply(content="Cannot divide by zero."),
    )

    def divide(a: float, b: float) -> float:
        """Divide a by b."""
        return a / b

    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        result = await model.act("1/0?", [divide])
    outcome = result.rounds[0].tool_calls[0]
    assert isinstance(outcome.error, lms.LMStudioToolCallError)
    assert isinstance(outcome.error.__cause__, ZeroDivisionError)
    sent = json.loads(_messages(simulator, 1)[-1]["content"][0]["content"])
    assert "ZeroDivisionError" in sent["error"]
    assert result.content == "Cannot divide by zero."


class StopAgent(BaseException):
    """A caller's own control flow (like KeyboardInterrupt): not a tool failure."""


async def test_a_base_exception_in_a_tool_stops_act_and_comes_out_unwrapped(
    simulator: Simulator,
) -> None:
    simulator.script(
        MODEL,
        ScriptedReply(
            tool_calls=[
                ScriptedToolCall(name="slow", arguments={}),
                ScriptedToolCall(name="stop", arguments={"reason": "done"}),
            ]
        ),
    )
    slow_cancelled = anyio.Event()

    async def slow() -> str:
        """Takes a while."""
        try:
            await anyio.sleep(30)
        finally:
            slow_cancelled.set()
        return "never"

    async def stop(reason: str) -> str:
        """Stop the agent."""
        raise StopAgent(reason)

    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        with anyio.fail_after(5), pytest.raises(StopAgent, match="done") as caught:
            await model.act("stop", [slow, stop], max_parallel_tool_calls=2)
        assert type(caught.value) is StopAgent, "not wrapped in an exception group"
        assert slow_cancelled.is_set(), "the other running tool was cancelled"
        assert len(simulator.predictions) == 1, "no further round was started"
        await simulator.wait_for(lambda: client._open_channel_count() == 0)
        assert simulator.open_channel_count() == 0


async def test_handler_can_replace_or_abort(simulator: Simulator) -> None:
    simulator.script(
        MODEL,
        ScriptedReply(tool_calls=[ScriptedToolCall(name="boom", arguments={})]),
        ScriptedReply(content="ok"),
        ScriptedReply(tool_calls=[ScriptedToolCall(name="boom", arguments={})]),
    )

    def boom() -> None:
        raise RuntimeError("kaput")

    def replace(error: lms.LMStudioToolCallError, request: Any) -> str:
        return "tool unavailable"

    def abort(error: lms.LMStudioToolCallError, request: Any) -> str:
        raise error

    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        await model.act("Go", [boom], handle_invalid_tool_request=replace)
        assert _messages(simulator, 1)[-1]["content"][0]["content"] == "tool unavailable"
        with pytest.raises(lms.LMStudioToolCallError, match="kaput"):
            await model.act("Go", [boom], handle_invalid_tool_request=abort)
        assert client._open_channel_count() == 0


async def test_unknown_tool_and_invalid_arguments(simulator: Simulator) -> None:
    simulator.script(
        MODEL,
        ScriptedReply(
            tool_calls=[
                ScriptedToolCall(name="multiply", arguments={"a": 2, "b": 3}),
                ScriptedToolCall(name="add", arguments={"a": "two", "b": 3}),
                ScriptedToolCall(name="add", arguments={"a": 2, "b": 3, "c": 4}),
                ScriptedToolCall(name="add", arguments={"a": 2, "b": 3}),
            ]
        ),
        ScriptedReply(content="5"),
    )
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        result = await model.act("2*3?", [add])
    unknown, wrong_type, extra, good = result.rounds[0].tool_calls
    assert unknown.error is not None
    assert "Unknown tool 'multiply'" in str(unknown.error)
    assert "available tools: 'add'" in json.loads(unknown.content)["error"]
    assert wrong_type.error is not None
    assert "Invalid arguments" in str(wrong_type.error)
    assert extra.error is not None
    assert "unknown field `c`" in str(extra.error)
    assert good.value == 5
    assert good.content == "5"
    assert result.content == "5"


async def test_failed_tool_call_generation_goes_to_handler(simulator: Simulator) -> None:
    simulator.script(
        MODEL, ScriptedReply(content="hmm", tool_calls=[ScriptedToolCall(name="add", fail=True)])
    )
    reported: list[tuple[str, object]] = []

    def handler(error: lms.LMStudioToolCallError, request: Any) -> None:
        reported.append((str(error), request))

    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        result = await model.act("Add", [add], handle_invalid_tool_request=handler)
    assert len(result.rounds) == 1
    assert len(result.rounds[0].tool_call_failures) == 1
    assert reported
    assert reported[0][1] is None
    assert "Failed to parse tool call" in reported[0][0]


async def test_round_limit_stops_an_endless_loop(simulator: Simulator) -> None:
    loop_call = ScriptedReply(tool_calls=[ScriptedToolCall(name="add", arguments={"a": 1, "b": 1})])
    simulator.script(MODEL, loop_call, loop_call, loop_call)
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        result = await model.act("Loop", [add], max_prediction_rounds=3)
    assert len(result.rounds) == 3
    assert result.round_limit_reached
    assert [len(r.tool_calls) for r in result.rounds] == [1, 1, 0]
    assert len(result.rounds[-1].unexecuted_tool_calls) == 1
    assert _config_field(simulator, 1, "llm.prediction.tools")["type"] == "toolArray"
    assert _config_field(simulator, 2, "llm.prediction.tools") == {"type": "none"}
    # The unexecuted call is not left dangling in the history.
    assert all(part.__class__.__name__ != "ToolCallRequestPart" for part in result.chat[-1].content)


async def test_act_accepts_chat_and_message_list(simulator: Simulator) -> None:
    chat = lms.Chat.from_history([{"role": "system", "content": "Be brief."}])
    chat.add_user_message("Hi")
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        result = await model.act(chat, [add])
        assert len(chat) == 2  # the caller's chat is not modified
        assert result.content == "You said: Hi"
        result2 = await model.act([{"role": "user", "content": "Yo"}], [add])
        assert result2.content == "You said: Yo"


async def test_bad_act_arguments(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        with pytest.raises(lms.LMStudioUsageError, match="max_prediction_rounds"):
            await model.act("Hi", [add], max_prediction_rounds=0)
        with pytest.raises(lms.LMStudioUsageError, match="max_parallel_tool_calls"):
            await model.act("Hi", [add], max_parallel_tool_calls=0)
        with pytest.raises(lms.LMStudioUsageError, match="list of functions"):
            await model.act("Hi", add)  # type: ignore[arg-type]
        with pytest.raises(lms.LMStudioUsageError, match="unique"):
            await model.act("Hi", [add, lms.Tool.from_function(add)])
        with pytest.raises(lms.LMStudioUsageError, match="raw_tools"):
            await model.act("Hi", [add], config={"raw_tools": {"type": "none"}})
        schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
        with pytest.raises(lms.LMStudioUsageError, match=r"act\(\) cannot constrain.*respond"):
            await model.act(
                "Hi", [add], config={"structured": {"type": "json", "json_schema": schema}}
            )
        # Explicitly unconstrained output is what act() sends anyway.
        result = await model.act("Hi", [add], config={"structured": {"type": "none"}})
        assert result.content == "You said: Hi"
    assert len(simulator.predictions) == 1


@pytest.mark.parametrize(
    "name",
    [
        "on_message",
        "on_round_start",
        "on_round_end",
        "on_prediction_fragment",
        "on_prediction_completed",
        "on_tool_call_result",
        "guard_tool_call",
        "handle_invalid_tool_request",
    ],
)
async def test_a_callback_that_is_not_callable_is_refused_before_sending(
    simulator: Simulator, name: str
) -> None:
    # Scripted so that every callback's event would happen: a tool call, then an answer.
    simulator.script(
        MODEL,
        ScriptedReply(tool_calls=[ScriptedToolCall(name="add", arguments={"a": 1, "b": 2})]),
        ScriptedReply(content="3"),
    )
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        not_callable: dict[str, Any] = {name: 5}
        with pytest.raises(lms.LMStudioUsageError, match=f"act\\(\\): {name} must be a function"):
            await model.act("Add 1 and 2", [add], **not_callable)
    assert simulator.predictions == []


async def test_tool_results_carry_the_tool_name_and_reach_on_tool_call_result(
    simulator: Simulator,
) -> None:
    simulator.script(
        MODEL,
        ScriptedReply(
            tool_calls=[
                ScriptedToolCall(name="add", arguments={"a": 2, "b": 5}, id="call_a"),
                ScriptedToolCall(name="nope", arguments={}, id="call_b"),
            ],
        ),
        ScriptedReply(content="Done."),
    )
    seen: list[tuple[int, int, lms.types.ToolCallResultPart]] = []
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        await model.act(
            "Add 2 and 5.",
            [add],
            on_tool_call_result=lambda r, c, part: seen.append((r, c, part)),
        )
    assert [(r, c, p.name, p.tool_call_id) for r, c, p in seen] == [
        (0, 0, "add", "call_a"),
        (0, 1, "nope", "call_b"),
    ]
    assert seen[0][2].content == "7"
    assert "Unknown tool 'nope'" in seen[1][2].content
    # The same results, with their names, are what LM Studio receives in the next round.
    tool_message = _messages(simulator, 1)[-1]
    assert tool_message == {
        "role": "tool",
        "content": [
            {"type": "toolCallResult", "content": "7", "toolCallId": "call_a", "name": "add"},
            {
                "type": "toolCallResult",
                "content": seen[1][2].content,
                "toolCallId": "call_b",
                "name": "nope",
            },
        ],
    }


async def test_the_last_round_resets_a_required_tool_choice(simulator: Simulator) -> None:
    # The last round offers no tools, so "required" could not be met there.
    loop_call = ScriptedReply(tool_calls=[ScriptedToolCall(name="add", arguments={"a": 1, "b": 1})])
    simulator.script(MODEL, loop_call, loop_call)
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        await model.act("Loop", [add], max_prediction_rounds=2, config={"tool_choice": "required"})
    assert _config_field(simulator, 0, "llm.prediction.toolChoice") == {
        "type": "generic",
        "mode": "required",
    }
    assert _config_field(simulator, 1, "llm.prediction.tools") == {"type": "none"}
    assert _config_field(simulator, 1, "llm.prediction.toolChoice") == {
        "type": "generic",
        "mode": "auto",
    }

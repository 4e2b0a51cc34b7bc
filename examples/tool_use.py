"""Tool use: let the model call Python functions in a loop with ``model.act()``.

uv run python examples/tool_use.py --simulate   # bundled simulator
uv run python examples/tool_use.py              # LMSTUDIO_BASE_URL, else local
"""

from __future__ import annotations

import asyncio
import os

from _common import connect, parser, run

import lmstudio_async as lms
from lmstudio_async.testing import ScriptedReply, ScriptedToolCall, Simulator

MODEL = os.environ.get("LMSTUDIO_MODEL", "qwen2.5-7b-instruct")

TEMPERATURES = {"paris": 18.5, "oslo": 4.0}


async def get_temperature(city: str) -> float:
    """The current temperature in a city, in degrees Celsius."""
    await asyncio.sleep(0.05)  # pretend to call a weather service
    return TEMPERATURES[city.lower()]


def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


def guard(request: lms.types.ToolCallRequest) -> lms.GuardDecision:
    """Approve every call, except weather lookups for cities we have no data for."""
    city = (request.arguments or {}).get("city")
    if request.name == "get_temperature" and str(city).lower() not in TEMPERATURES:
        return lms.GuardDecision.deny(f"no weather data for {city}")
    return lms.GuardDecision.allow()


def show(message: lms.ChatMessage) -> None:
    """Print each message act() adds: text, the tool calls asked for, and their results."""
    for part in message.content:
        if isinstance(part, lms.types.TextPart) and part.text:
            print(f"[{message.role}] {part.text}")
        elif isinstance(part, lms.types.ToolCallRequestPart):
            call = part.tool_call_request
            arguments = ", ".join(f"{k}={v!r}" for k, v in (call.arguments or {}).items())
            print(f"[{message.role}] calls {call.name}({arguments})")
        elif isinstance(part, lms.types.ToolCallResultPart):
            print(f"[{message.role}] {part.name or 'tool'} returned {part.content}")


async def main(simulate: bool) -> None:
    async with connect(simulate, prepare=script) as client:
        model = await client.llm.model(MODEL)
        result = await model.act(
            "What is the temperature in Paris plus the temperature in Oslo?",
            [get_temperature, add],
            max_prediction_rounds=5,
            max_parallel_tool_calls=2,
            guard_tool_call=guard,
            on_message=show,
        )
        for round_ in result.rounds:
            calls = ", ".join(f"{o.request.name} -> {o.content}" for o in round_.tool_calls)
            print(f"round {round_.index}: {round_.stats.stop_reason}; {calls or 'no tool calls'}")
        print(f"Answer: {result.content}")


def script(sim: Simulator) -> None:
    # What a real model might answer, so the example runs without LM Studio.
    sim.script(
        MODEL,
        ScriptedReply(
            content="Let me look those up.",
            tool_calls=[
                ScriptedToolCall(name="get_temperature", arguments={"city": "Paris"}),
                ScriptedToolCall(name="get_temperature", arguments={"city": "Oslo"}),
                ScriptedToolCall(name="get_temperature", arguments={"city": "Atlantis"}),
            ],
        ),
        ScriptedReply(tool_calls=[ScriptedToolCall(name="add", arguments={"a": 18.5, "b": 4})]),
        ScriptedReply(content="Together that makes 22.5 degrees."),
    )


if __name__ == "__main__":
    args = parser(__doc__.splitlines()[0]).parse_args()
    run(main(args.simulate))

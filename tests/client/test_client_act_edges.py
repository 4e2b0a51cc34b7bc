"""act() edges: a tool that raises CancelledError itself, and cancelling a slow sync tool."""

from __future__ import annotations

import asyncio
import threading

import anyio
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import ScriptedReply, ScriptedToolCall, Simulator

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"


async def test_a_tool_raising_cancelled_error_is_a_tool_failure(
    simulator: Simulator, model: lms.LLM
) -> None:
    simulator.script(
        MODEL, ScriptedReply(tool_calls=[ScriptedToolCall(name="fetch", arguments={"n": 1})])
    )
    simulator.script(MODEL, ScriptedReply(content="Sorry, the fetch failed."))

    async def fetch(n: int) -> str:
        """Awaits a future that something else cancelled."""
        cancelled_elsewhere: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        cancelled_elsewhere.cancel()
        return await cancelled_elsewhere

    errors: list[lms.LMStudioToolCallError] = []

    def handle(error: lms.LMStudioToolCallError, request: object) -> str:
        errors.append(error)
        return str(error)

    with anyio.fail_after(10):
        result = await model.act("Go", [fetch], handle_invalid_tool_request=handle)
    assert result.content == "Sorry, the fetch failed."
    assert len(errors) == 1
    assert str(errors[0]) == (
        "Tool 'fetch' raised CancelledError although act() was not cancelled: it awaited "
        "something that was cancelled elsewhere."
    ), "one sentence, not wrapped in a second 'raised LMStudioToolCallError'"
    assert isinstance(errors[0].__cause__, asyncio.CancelledError)


async def test_cancelling_act_during_a_slow_sync_tool_returns_promptly(
    simulator: Simulator, client: lms.LMStudioClient, model: lms.LLM
) -> None:
    simulator.script(
        MODEL, ScriptedReply(tool_calls=[ScriptedToolCall(name="slow", arguments={"n": 1})])
    )
    in_tool = threading.Event()
    release = threading.Event()
    tool_done = threading.Event()

    def slow(n: int) -> int:
        """Blocks its thread until the test releases it."""
        in_tool.set()
        release.wait(10)
        tool_done.set()
        return n

    try:
        with anyio.CancelScope() as scope:

            async def cancel_once_in_tool() -> None:
                await anyio.to_thread.run_sync(in_tool.wait, 10)
                scope.cancel()

            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_once_in_tool)
                with anyio.fail_after(10):
                    await model.act("Go", [slow])
        # Returned while the tool's thread is still blocked: nothing waited for it.
        assert scope.cancelled_caught
        assert not tool_done.is_set(), "act() waited for the tool's thread"
    finally:
        release.set()
    await simulator.wait_for(lambda: client._open_channel_count() == 0)

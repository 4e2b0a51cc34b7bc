"""max_concurrent_predictions bounds what runs in LM Studio, not just what the caller reads."""

from __future__ import annotations

import gc
from typing import Any

import anyio
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import ScriptedReply, Simulator
from reliability.raw_server import SUCCESS, ServerEnd, serve_raw

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"
MODEL_INFO: dict[str, Any] = SUCCESS["modelInfo"]


async def test_abandoned_predictions_keep_their_slot_until_lm_studio_ends_them(
    simulator: Simulator,
) -> None:
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, sum(1 for p in simulator.predictions if p.status == "running"))
            await anyio.sleep(0.001)

    async with lms.LMStudioClient(simulator.base_url, max_concurrent_predictions=2) as client:
        model = await client.llm.model(MODEL)

        async def abandon_after_first_fragment() -> None:
            simulator.script(MODEL, ScriptedReply(content="x " * 200, tokens_per_second=200))
            with anyio.CancelScope() as scope:
                async for _ in model.respond("go"):
                    scope.cancel()  # at the next await: abandoned mid-stream, not finished

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                async with anyio.create_task_group() as burst:
                    for _ in range(8):
                        burst.start_soon(abandon_after_first_fragment)
                tg.cancel_scope.cancel()
        await simulator.wait_for(lambda: client._open_channel_count() == 0)
    assert len(simulator.predictions) > 2
    assert peak <= 2, f"{peak} predictions ran in LM Studio at once with a limit of 2"


async def test_a_cancel_never_confirmed_frees_the_slot_after_a_bounded_grace() -> None:
    created: list[int] = []

    async def handler(end: ServerEnd) -> None:
        await end.accept_auth()
        while True:
            frame = await end.receive_json()
            if frame["type"] == "rpcCall":
                await end.send_json(
                    {"type": "rpcResult", "callId": frame["callId"], "result": MODEL_INFO}
                )
            elif frame["type"] == "channelCreate":
                # Streams one fragment, then ignores everything, cancel included.
                created.append(frame["channelId"])
                await end.send_json(
                    {
                        "type": "channelSend",
                        "channelId": frame["channelId"],
                        "message": {"type": "fragment", "fragment": {"content": "x"}},
                    }
                )

    async with (
        serve_raw(handler) as server,
        lms.LMStudioClient(server.base_url, max_concurrent_predictions=1) as client,
    ):
        model = await client.llm.model()
        (await client._connection("llm")).abandon_grace = 0.5
        first = model.respond("one")
        await anext(aiter(first))
        del first
        gc.collect()  # abandoned: cancel sent, never confirmed
        second = model.respond("two")
        with anyio.fail_after(10):
            await anext(aiter(second))  # gets the slot once the grace has passed
        assert len(created) == 2
        assert client._open_channel_count() == 1, "the abandoned channel is forgotten"

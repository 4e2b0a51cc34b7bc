"""Cancellation at every await point of the public API leaves consistent state behind.

Each operation runs under a cancel scope that a sibling task cancels after ``k`` event-loop
checkpoints, for every ``k`` from 0 until the operation completes before the cancel arrives
(the httpcore ``test_cancellations.py`` idea). After each: nothing open on either side, a
prediction that reached the server was cancelled there, and the next call works.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import ScriptedReply, Simulator

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"
# Far more event-loop steps than any operation below needs; reaching it means one never finished.
MAX_CHECKPOINTS = 5000


async def _cancel_after(k: int, operation: Callable[[], Awaitable[Any]]) -> bool:
    """Run ``operation``, cancelled after ``k`` checkpoints; True if it finished first."""
    finished = False

    async def run() -> None:
        nonlocal finished
        await operation()
        finished = True

    async with anyio.create_task_group() as tg:

        async def canceller() -> None:
            for _ in range(k):
                await anyio.lowlevel.checkpoint()
            tg.cancel_scope.cancel()

        tg.start_soon(run)
        tg.start_soon(canceller)
    return finished


async def _check_consistent(sim: Simulator, client: lms.LMStudioClient, seen: int) -> None:
    await sim.wait_for(lambda: sim.open_channel_count() == 0)
    await sim.wait_for(lambda: client._open_channel_count() == 0)
    await sim.wait_for(lambda: client._pool.pending_call_count() == 0)
    for record in sim.predictions[seen:]:
        # Every prediction the server started either finished or was stopped by our `cancel`
        # ("cancelled" is set only then; ``cancel_received`` misses a cancel that arrives
        # before the simulator's handler registered its hook).
        assert record.status in ("finished", "cancelled"), record
    with anyio.fail_after(5):
        assert (await client.system.version()).version


@pytest.mark.parametrize(
    "operation",
    ["respond", "respond_iterate", "complete", "model", "list_loaded", "embed", "version"],
)
async def test_cancel_at_every_checkpoint(operation: str) -> None:
    async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
        llm = await client.llm.model(MODEL)
        embedder = await client.embedding.model()
        # Unpaced, so every step of the stream (open, progress, fragments, success) is some
        # checkpoint count away and the sweep reaches completion.
        reply = ScriptedReply(content="a b c d e f g h")

        async def respond() -> None:
            sim.script(MODEL, reply)
            await llm.respond("go")

        async def respond_iterate() -> None:
            sim.script(MODEL, reply)
            async for _ in llm.respond("go"):
                pass

        async def complete() -> None:
            sim.script(MODEL, reply)
            await llm.complete("go")

        async def model() -> None:
            await client.llm.model(MODEL)

        async def list_loaded() -> None:
            await client.llm.list_loaded()

        async def embed() -> None:
            await embedder.embed(["one", "two", "three"])

        async def version() -> None:
            await client.system.version()

        body = locals()[operation]
        completed_at = None
        for k in range(MAX_CHECKPOINTS):
            seen = len(sim.predictions)
            with anyio.fail_after(10):
                finished = await _cancel_after(k, body)
                await _check_consistent(sim, client, seen)
            if finished:
                completed_at = k
                break
        # The sweep covered every await point: cancelled at the very first, completed at last.
        assert completed_at is not None, f"{operation} never completed"
        assert completed_at > 0

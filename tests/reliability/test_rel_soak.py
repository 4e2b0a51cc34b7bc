"""Soak: repeated connect / predict / cancel / disconnect leaks no tasks, descriptors or memory.

Runs in the normal suite at a small size; ``LMSTUDIO_SOAK_ITERATIONS`` scales it up
(``pytest -m soak``).
"""

from __future__ import annotations

import asyncio
import gc
import os
import tracemalloc

import anyio
import anyio.lowlevel
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import Faults, ScriptedReply, Simulator

MODEL = "qwen2.5-7b-instruct"
ITERATIONS = int(os.environ.get("LMSTUDIO_SOAK_ITERATIONS", "30"))


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.soak
@pytest.mark.anyio
async def test_connect_predict_cancel_disconnect_loop() -> None:
    samples: list[tuple[int, int, int]] = []
    tracemalloc.start()
    try:
        async with Simulator() as sim:
            for iteration in range(ITERATIONS):
                async with lms.LMStudioClient(sim.base_url) as client:
                    model = await client.llm.model(MODEL)
                    assert (await model.respond(f"hello {iteration}")).content
                    sim.script(MODEL, ScriptedReply(content="w " * 100, tokens_per_second=1000))
                    async for _ in model.respond("cancel me"):
                        break
                    with anyio.move_on_after(0.01):
                        await model.respond("time me out")
                    if iteration % 3 == 0:
                        # Aimed at this prompt: the timed-out prediction above may reach the
                        # server only now, and must not take the dropping reply.
                        sim.add_rule(
                            ScriptedReply(content="a b c", faults=Faults(drop_after_fragments=1)),
                            last_user_message="^dropped$",
                            times=1,
                        )
                        with pytest.raises(lms.LMStudioConnectionError):
                            await model.respond("dropped")
                await sim.wait_for(lambda: sim.connection_count() == 0)
                gc.collect()
                await anyio.lowlevel.checkpoint()
                samples.append((len(asyncio.all_tasks()), _fds(), _client_bytes()))
    finally:
        tracemalloc.stop()
    tenth = max(1, ITERATIONS // 10)
    first, last = samples[:tenth], samples[-tenth:]
    assert max(s[0] for s in last) <= max(s[0] for s in first), "tasks grew"
    assert max(s[1] for s in last) <= max(s[1] for s in first), "file descriptors grew"
    first_mem = sum(s[2] for s in first) / len(first)
    last_mem = sum(s[2] for s in last) / len(last)
    # Memory held by the client's code: a leaked client, connection or prediction handle per
    # iteration would add kilobytes each; allow only noise.
    assert last_mem - first_mem < 32 * 1024, (first_mem, last_mem)


def _client_bytes() -> int:
    """Traced memory allocated by the client's code (the in-process simulator excluded)."""
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [
            tracemalloc.Filter(True, "*/lmstudio_async/*"),
            tracemalloc.Filter(False, "*/lmstudio_async/testing/*"),
        ]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))

"""Load and memory: many concurrent predictions through one client against a simulator in a
separate process; per-prediction memory stays at content size plus a small constant."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator

import anyio
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import Simulator, default_reply

MODEL = "qwen2.5-7b-instruct"
# The full size by default; LMSTUDIO_LOAD_PREDICTIONS shrinks it on slow machines.
PREDICTIONS = int(os.environ.get("LMSTUDIO_LOAD_PREDICTIONS", "2000"))
FRAGMENTS = 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@pytest.fixture
def simulator_process() -> Iterator[str]:
    """``python -m lmstudio_async.testing`` on a free port; yields its base URL."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "lmstudio_async.testing", "--port", str(port), "--quiet"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        greeting = process.stdout.readline()
        assert "serving" in greeting, greeting
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def _prompt(index: int) -> str:
    # "You said: " + 198 words = 200 fragments of one word each.
    return " ".join([f"p{index}"] + [f"w{i}" for i in range(FRAGMENTS - 3)])


def _expected(index: int) -> str:
    history = {
        "messages": [{"role": "user", "content": [{"type": "text", "text": _prompt(index)}]}]
    }
    return default_reply(history)


@pytest.mark.anyio
@pytest.mark.timeout(120)
async def test_thousands_of_concurrent_predictions(simulator_process: str) -> None:
    rss_before = _rss_kib()
    started = time.monotonic()
    slow_index = 0
    finished: list[int] = []
    others_done = anyio.Event()
    if PREDICTIONS == 1:
        others_done.set()
    async with lms.LMStudioClient(simulator_process) as client:
        model = await client.llm.model(MODEL)

        async def run(index: int) -> None:
            parts: list[str] = []
            async for fragment in model.respond(_prompt(index)):
                parts.append(fragment.content)
                if index == slow_index and len(parts) == 1:
                    # A consumer that stops reading until every other prediction is complete:
                    # its packets pile up in its own buffer only. A receive loop that waited
                    # for it would never let the others finish (fail_after below).
                    await others_done.wait()
            assert len(parts) == FRAGMENTS, (index, len(parts))
            assert "".join(parts) == _expected(index)
            finished.append(index)
            if len(finished) == PREDICTIONS - 1 and index != slow_index:
                others_done.set()

        with anyio.fail_after(110):
            async with anyio.create_task_group() as tg:
                for index in range(PREDICTIONS):
                    tg.start_soon(run, index)
        assert client._open_channel_count() == 0
    elapsed = time.monotonic() - started
    assert sorted(finished) == list(range(PREDICTIONS))
    assert finished[-1] == slow_index, "the slow consumer finished last, delaying nobody"
    rss_after = _rss_kib()
    print(
        f"\n{PREDICTIONS} predictions x {FRAGMENTS} fragments in {elapsed:.1f} s "
        f"({PREDICTIONS * FRAGMENTS / elapsed:,.0f} fragments/s); RSS {rss_before / 1024:.0f} "
        f"-> {rss_after / 1024:.0f} MiB (+{(rss_after - rss_before) / 1024:.0f} MiB)"
    )


@pytest.mark.anyio
async def test_slow_consumer_does_not_delay_the_others() -> None:
    async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
        model = await client.llm.model(MODEL)
        release = anyio.Event()
        done: list[int] = []

        async def slow() -> None:
            async for _ in model.respond(_prompt(0)):
                await release.wait()
            done.append(0)

        async def fast(index: int) -> None:
            assert (await model.respond(_prompt(index))).content == _expected(index)
            done.append(index)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(slow)
                async with anyio.create_task_group() as fast_group:
                    for index in range(1, 21):
                        fast_group.start_soon(fast, index)
                assert sorted(done) == list(range(1, 21)), "all fast ones finished first"
                release.set()
        assert done[-1] == 0


@pytest.mark.anyio
async def test_memory_per_prediction_is_content_plus_a_constant() -> None:
    """A handle keeps the text, not every fragment object."""
    async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
        model = await client.llm.model(MODEL)
        await model.respond(_prompt(0))  # warm up caches and lazily created state
        handles = []
        gc.collect()
        tracemalloc.start()
        try:
            before = _client_bytes(tracemalloc.take_snapshot())
            count = 20
            for index in range(count):
                prediction = model.respond(_prompt(index))
                async for _ in prediction:
                    pass
                handles.append(prediction)  # keep them alive: their memory is what we measure
            gc.collect()
            grown = _client_bytes(tracemalloc.take_snapshot()) - before
        finally:
            tracemalloc.stop()
        content_bytes = sum(len(h.content) for h in handles)
        per_prediction = (grown - content_bytes) / count
        print(
            f"\nper prediction: {grown / count:,.0f} B traced, "
            f"content {content_bytes / count:,.0f} B"
        )
        # 200 fragment objects would be ~30 KiB; the constant part (result, stats, model info,
        # the handle) stays well below that.
        assert per_prediction < 16 * 1024, per_prediction


def _client_bytes(snapshot: tracemalloc.Snapshot) -> int:
    """Memory allocated by the client's code (the in-process simulator's records excluded)."""
    filtered = snapshot.filter_traces(
        [
            tracemalloc.Filter(True, "*/lmstudio_async/*"),
            tracemalloc.Filter(False, "*/lmstudio_async/testing/*"),
        ]
    )
    return sum(stat.size for stat in filtered.statistics("filename"))

"""run_batch and JsonlOutput when things go wrong around the items: a second writer, text JSON
cannot carry, a full disk, failed items to run again, a slow input, leaving early."""

from __future__ import annotations

import errno
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import lmstudio_async as lms
from lmstudio_async.batch import BatchOutcome, JsonlOutput, run_batch
from lmstudio_async.testing import Faults, ScriptedReply, Simulator, lmstudio_error

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"
STALL = ScriptedReply(content="never finished", faults=Faults(stall_after_fragments=1))
OVERLOADED = ScriptedReply(error=lmstudio_error("Server overloaded", cause="Too many requests"))


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.skipif(sys.platform == "win32", reason="no flock on Windows (documented)")
async def test_a_second_writer_on_the_same_output_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with JsonlOutput(out) as first:
        first.write({"index": 0, "content": "x"})
        with pytest.raises(lms.LMStudioUsageError, match="being written by another batch run"):
            JsonlOutput(out, resume=True).open()
    # Closing releases the lock: a resume afterwards works and sees the one line.
    with JsonlOutput(out, resume=True) as again:
        assert set(again.written) == {0}


async def test_an_item_json_cannot_carry_is_written_escaped_and_the_batch_goes_on(
    simulator: Simulator, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    prompts = [f"p{n}" for n in range(6)]
    prompts[2] = "bad \ud800 item"  # a lone surrogate: not encodable as UTF-8
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        async with run_batch(model, prompts, output=out, concurrency=2) as run:
            outcomes = [o async for o in run]
        assert len(outcomes) == 6
        records = {r["index"]: r for r in read_lines(out)}
        assert sorted(records) == list(range(6))
        assert records[2]["input"] == "bad \\ud800 item"
        assert records[2]["escaped"] is True
        assert "escaped" not in records[0]
        # The escaped record still matches its input when the run is resumed.
        async with run_batch(model, prompts, output=out, resume=True) as run:
            progress = await run.wait()
    assert progress.skipped == 6


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
async def test_a_full_disk_raises_the_oserror_itself(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        with pytest.raises(OSError, match="No space left") as caught:
            async with run_batch(model, ["a", "b", "c"], output="/dev/full") as run:
                await run.wait()
    assert type(caught.value) is OSError  # not an exception group around it
    assert caught.value.errno == errno.ENOSPC
    assert run.progress.in_flight == 0


async def test_resume_is_honoured_for_an_unopened_jsonloutput(
    simulator: Simulator, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"index":0,"input":"a","handle":0,"attempts":1,"content":"x"}\n')
    output = JsonlOutput(out)
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        async with run_batch(model, ["a", "b"], output=output, resume=True) as run:
            await run.wait()
    assert run.progress.skipped == 1
    assert [r["index"] for r in read_lines(out)] == [0, 1]
    assert not output.is_open  # run_batch opened it, so run_batch closed it


async def test_nothing_is_in_flight_once_the_block_is_left_early(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        async with run_batch(model, [f"p{n}" for n in range(50)], concurrency=4) as run:
            async for _ in run:
                break
    assert run.progress.in_flight == 0, str(run.progress)
    assert "0 in flight" in str(run.progress)


async def test_retry_failed_runs_failed_items_again_and_supersedes_their_lines(
    simulator: Simulator, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    prompts = ["a", "b", "c"]
    simulator.script(MODEL, OVERLOADED)  # the first prediction fails, the rest succeed
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        async with run_batch(model, prompts, output=out, concurrency=1) as run:
            await run.wait()
        assert run.progress.failed == 1
        # Resuming alone leaves the failure as it is.
        async with run_batch(model, prompts, output=out, resume=True) as run:
            await run.wait()
        assert (run.progress.skipped, run.progress.done) == (3, 0)
        async with run_batch(model, prompts, output=out, resume=True, retry_failed=True) as run:
            outcomes = [o async for o in run]
    assert [(o.index, o.ok) for o in outcomes] == [(0, True)]
    assert run.progress.skipped == 2
    records = read_lines(out)
    assert [r["index"] for r in records] == [0, 1, 2, 0]
    assert "error" in records[0]
    assert "content" in records[3]
    # The last record per index counts: nothing failed now, and nothing runs again.
    with JsonlOutput(out, resume=True) as output:
        assert output.failed == set()
        assert sorted(output.written) == [0, 1, 2]


async def test_retry_failed_needs_resume(simulator: Simulator, tmp_path: Path) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        with pytest.raises(lms.LMStudioUsageError, match="retry_failed=True needs resume=True"):
            async with run_batch(model, ["a"], output=tmp_path / "o.jsonl", retry_failed=True):
                pass


async def test_a_failed_over_item_does_not_wait_for_a_slow_input() -> None:
    # The input yields its third item only once an item has been failed over (as a pipeline
    # whose input depends on outcomes would): the retry must be served without the input.
    failed_over = anyio.Event()

    async def inputs() -> AsyncIterator[str]:
        yield "first"
        yield "second"
        await failed_over.wait()
        yield "third"

    async with Simulator() as sim_b:
        sim_a = Simulator()
        await sim_a.start()
        try:
            sim_a.script(MODEL, STALL, STALL, STALL)  # whatever host A gets hangs
            async with (
                lms.LMStudioClient(sim_a.base_url) as client_a,
                lms.LMStudioClient(sim_b.base_url) as client_b,
            ):
                models = [await client_a.llm.model(MODEL), await client_b.llm.model(MODEL)]
                results: list[BatchOutcome] = []
                # Generous: a deadlock fails the test instead of hanging the suite.
                with anyio.fail_after(120):
                    async with (
                        run_batch(models, inputs(), concurrency=1) as run,
                        anyio.create_task_group() as group,
                    ):

                        async def consume() -> None:
                            async for outcome in run:
                                results.append(outcome)
                                if outcome.retried:
                                    failed_over.set()

                        group.start_soon(consume)
                        await sim_a.wait_for(lambda: len(sim_a.predictions) == 1)
                        await sim_a.aclose()  # host A goes away with its item in flight
        finally:
            await sim_a.aclose()
    assert sorted(o.input for o in results) == ["first", "second", "third"]
    assert all(o.ok for o in results)
    assert failed_over.is_set()

"""Resumable JSON Lines output: written per item, resumed without repeats, torn tails dropped."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

import lmstudio_async as lms
from lmstudio_async.batch import JsonlOutput, run_batch
from lmstudio_async.testing import Simulator

MODEL = "qwen2.5-7b-instruct"


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.anyio
async def test_resume_runs_only_the_missing_items(simulator: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    prompts = [f"prompt {n}" for n in range(12)]
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        async with run_batch(model, prompts, output=out, concurrency=2) as run:
            async for outcome in run:
                # Every finished item is on disk before it is handed over.
                assert outcome.index in {r["index"] for r in read_lines(out)}
                if run.progress.done == 5:
                    break
        first = read_lines(out)
        assert len(first) >= 5
        predictions_before = len(simulator.predictions)
        async with run_batch(model, prompts, output=out, resume=True) as run:
            progress = await run.wait()
    records = read_lines(out)
    assert sorted(r["index"] for r in records) == list(range(12))
    assert records[: len(first)] == first  # resuming only appends
    assert progress.skipped == len(first)
    assert progress.done == 12 - len(first)
    assert len(simulator.predictions) - predictions_before == 12 - len(first)
    for record in records:
        assert record["content"] == f"You said: {record['input']}"


def test_a_torn_last_line_is_dropped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"index": 0, "input": "a"}\n{"index": 2, "input": "c"}\n{"index": 1, "inp')
    with (
        caplog.at_level(logging.WARNING, "lmstudio_async.batch"),
        JsonlOutput(out, resume=True) as output,
    ):
        assert output.written == {0: "a", 2: "c"}
        assert output.dropped_torn_line
        output.write({"index": 1, "input": "b"})
    assert "incomplete last line" in caplog.text
    assert [r["index"] for r in read_lines(out)] == [0, 2, 1]


def test_a_complete_but_cut_last_line_is_dropped_too(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"index": 0}\n{"index": 1, "content": "cut\n')
    with JsonlOutput(out, resume=True) as output:
        assert set(output.written) == {0}
    assert out.read_bytes() == b'{"index": 0}\n'


def test_an_existing_file_is_not_overwritten_without_resume(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"index": 0}\n', encoding="utf-8")
    with pytest.raises(lms.LMStudioUsageError, match=r"already holds results.*resume"):
        JsonlOutput(out).open()
    assert out.read_text(encoding="utf-8") == '{"index": 0}\n'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"index": 0}\nnot json\n{"index": 1}\n', "line 2 is not a batch result"),
        (b'{"index": 0}\n{"index": -1}\n', "line 2 is not a batch result"),
        (b'{"index": 0}\n["index", 1]\n', "line 2 is not a batch result"),
        (b'{"index": 0}\n{"index": 0}\n', "index 0 follows a result"),
    ],
)
def test_a_file_this_runner_did_not_write_is_refused(
    tmp_path: Path, content: bytes, message: str
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(content)
    with pytest.raises(lms.LMStudioUsageError, match=message):
        JsonlOutput(out, resume=True).open()
    assert out.read_bytes() == content  # nothing truncated on a refusal


def test_an_index_is_never_written_twice(tmp_path: Path) -> None:
    with JsonlOutput(tmp_path / "out.jsonl") as output:
        output.write({"index": 3})
        with pytest.raises(lms.LMStudioUsageError, match="not writing it twice"):
            output.write({"index": 3})
        with pytest.raises(lms.LMStudioUsageError, match="integer 'index'"):
            output.write({"index": "3"})
    assert read_lines(tmp_path / "out.jsonl") == [{"index": 3}]


@pytest.mark.anyio
async def test_resuming_with_different_input_is_refused(
    simulator: Simulator, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"index": 0, "input": "the original"}\n', encoding="utf-8")
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)

        async def resume_with_other_input() -> None:
            async with run_batch(model, ["something else", "b"], output=out, resume=True) as run:
                await run.wait()

        with pytest.raises(lms.LMStudioUsageError, match="Item 0 of the input differs"):
            await resume_with_other_input()
    assert simulator.predictions == []
    assert len(read_lines(out)) == 1


def test_an_output_in_a_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(lms.LMStudioUsageError, match="Check that its folder exists"):
        JsonlOutput(tmp_path / "no-such-folder" / "out.jsonl").open()

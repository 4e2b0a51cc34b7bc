"""The quickstart, streaming and batch examples run end to end with ``--simulate``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from example_helpers import example, example_env


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), capture_output=True, text=True, env=example_env(), timeout=60, check=False
    )


def test_quickstart_streams_and_prints_the_stats() -> None:
    done = run(*example("quickstart.py", "--simulate"))

    assert done.returncode == 0, done.stderr
    reply, stats = done.stdout.splitlines()
    assert reply == "You said: What is the meaning of life?"
    name, tokens, first_token, stop_reason = stats.rsplit(" ", 3)
    assert (name, tokens, stop_reason) == ("Qwen2.5 7B Instruct", "8", "eosFound")
    assert float(first_token) >= 0


def test_streaming_fires_callbacks_and_stops_early_on_cancel() -> None:
    done = run(*example("streaming.py", "--simulate", "--stop-after", "100"))

    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[:3] == [
        "[prompt processed: 0%]",
        "[prompt processed: 100%]",
        "[first token]",
    ]
    summary = done.stderr.splitlines()[-1]
    assert summary.endswith("stop reason: userStopped]")
    assert 100 <= len(done.stdout.strip()) < 2000  # stopped well before the 2,200-char story


def test_streaming_without_cancel_gets_the_whole_reply() -> None:
    done = run(*example("streaming.py", "--simulate", "--stop-after", "0"))

    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1].endswith("stop reason: eosFound]")
    assert done.stdout.strip().endswith("in chapter 39, the model kept talking.")


def test_batch_writes_one_json_line_per_prompt_with_a_progress_bar(tmp_path: Path) -> None:
    output = tmp_path / "results.jsonl"
    done = run(
        *example("batch.py", "--simulate", "--count", "60", "--concurrency", "5"),
        "--output",
        str(output),
    )

    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(r["index"] for r in records) == list(range(60))
    for record in records:
        assert record["content"] == f"You said: {record['input']}"
        assert record["stop_reason"] == "eosFound"
    assert "60/60" in done.stderr
    assert done.stderr.splitlines()[-1] == "60 ok, 0 failed"


def test_batch_resumes_a_run_without_repeating_a_prompt(tmp_path: Path) -> None:
    output = tmp_path / "results.jsonl"
    output.write_text('{"index": 0, "input": "Give me fact number 1 about the moon."}\n')
    done = run(
        *example("batch.py", "--simulate", "--count", "5", "--resume"), "--output", str(output)
    )

    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(r["index"] for r in records) == list(range(5))
    assert "content" not in records[0]  # the earlier run's line is kept, not redone
    assert done.stderr.splitlines()[-1] == "4 ok, 0 failed, 1 already done"


def test_batch_reads_prompts_from_a_file(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("first\n\nsecond\nthird\n")
    done = run(*example("batch.py", "--simulate", "--prompts", str(prompts)))

    assert done.returncode == 0, done.stderr
    contents = {json.loads(line)["content"] for line in done.stdout.splitlines()}
    assert contents == {"You said: first", "You said: second", "You said: third"}

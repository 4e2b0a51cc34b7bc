"""``lmstudio-async batch`` as a real subprocess: inputs, progress, errors, kill and resume."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from lmstudio_async._cli._batch import _summary, render
from lmstudio_async.batch import BatchProgress
from lmstudio_async.testing import ScriptedReply, Simulator, lmstudio_error

pytestmark = pytest.mark.anyio

CLI = (sys.executable, "-m", "lmstudio_async")
MODEL = "qwen2.5-7b-instruct"
# Four words at 20 tokens/s: about 0.2 s per prediction, so a run of a few dozen is killable.
PACED = ScriptedReply(content="a paced reply here", tokens_per_second=20)


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LMSTUDIO_BASE_URL"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def host(sim: Simulator) -> list[str]:
    return ["--host", f"{sim.host}:{sim.port}"]


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


async def run_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process([*CLI, "batch", *args], env=cli_env(), check=False)


async def test_text_input_over_two_hosts_with_progress_lines(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"question {n}\n\n" for n in range(8)), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    async with Simulator() as sim_a, Simulator() as sim_b:
        for sim in (sim_a, sim_b):
            sim.script(MODEL, *[PACED] * 8)
        done = await run_cli(
            str(prompts), "-o", str(out), *host(sim_a), *host(sim_b),
            "--concurrency", "1", "--progress-interval", "0.1",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert sim_a.predictions
        assert sim_b.predictions  # both hosts took work
    records = read_records(out)
    assert sorted(r["index"] for r in records) == list(range(8))  # blank lines are not items
    assert {r["handle"] for r in records} == {0, 1}
    stderr = done.stderr.decode()
    # Not a terminal: plain progress lines, then the summary.
    assert "batch: " in stderr.splitlines()[0]
    assert " in flight" in stderr
    assert stderr.splitlines()[-1].startswith("batch: 8 done in ")


async def test_jsonl_input_with_messages_and_per_line_config(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    lines = [
        {"prompt": "plain"},
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hi"},
            ]
        },
        {"prompt": "short one", "config": {"max_tokens": 5}},
    ]
    prompts.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    async with Simulator() as sim:
        done = await run_cli(str(prompts), "-o", str(out), *host(sim), "--max-tokens", "50")
        assert done.returncode == 0, done.stderr
        max_tokens = sorted(
            field["value"]["value"]
            for p in sim.predictions
            for layer in p.config_stack["layers"]
            for field in layer["config"]["fields"]
            if field["key"] == "llm.prediction.maxPredictedTokens"
        )
    assert max_tokens == [5, 50, 50]  # the line's config wins over --max-tokens
    records = {r["index"]: r for r in read_records(out)}
    assert records[1]["content"] == "You said: hi"
    assert records[2]["input"] == {"input": "short one", "config": {"max_tokens": 5}}


async def test_simulate_embeds_each_line_and_a_finished_output_is_not_overwritten(
    tmp_path: Path,
) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("alpha\nbeta\n", encoding="utf-8")
    out = tmp_path / "vectors.jsonl"
    done = await run_cli(str(texts), "-o", str(out), "--simulate", "--task", "embed")
    assert done.returncode == 0, done.stderr
    records = sorted(read_records(out), key=lambda r: r["index"])
    assert [r["input"] for r in records] == ["alpha", "beta"]
    assert all(r["embedding"] and isinstance(r["embedding"][0], float) for r in records)
    before = out.read_bytes()
    again = await run_cli(str(texts), "-o", str(out), "--simulate", "--task", "embed")
    assert again.returncode == 1
    assert "already holds results" in again.stderr.decode()
    assert "--resume" in again.stderr.decode()
    assert out.read_bytes() == before


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2 is not JSON"),
        ('{"prompt": 3}', 'line 2: "prompt" must be a string'),
        ('{"prompt": "a", "messages": []}', 'exactly one of "prompt" and "messages"'),
        ('{"text": "a"}', "unknown key(s) text"),
    ],
)
async def test_a_bad_input_line_is_named_before_anything_runs(
    tmp_path: Path, line: str, message: str
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "fine"}\n' + line + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    async with Simulator() as sim:
        done = await run_cli(str(prompts), "-o", str(out), *host(sim))
        assert sim.predictions == []
    assert done.returncode == 1
    assert message in done.stderr.decode()
    assert not out.exists()


async def test_killed_mid_run_then_resumed_ends_with_every_item_exactly_once(
    tmp_path: Path,
) -> None:
    total = 30
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"item {n}\n" for n in range(total)), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = [*CLI, "batch", str(prompts), "-o", str(out), "--concurrency", "2"]
    async with Simulator() as sim:
        # The predictions cut short by the kill use up a scripted reply each, hence the spares.
        sim.script(MODEL, *[PACED] * (total + 4))
        async with await anyio.open_process([*args, *host(sim)], env=cli_env()) as process:
            await sim.wait_for(lambda: line_count(out) >= 5, timeout=30)
            process.kill()  # SIGKILL: no cleanup, no flush, no goodbye
            await process.wait()
        assert process.returncode == -signal.SIGKILL
        kept = line_count(out)
        assert kept < total
        # What a kill in the middle of a write leaves behind: a line without its end.
        with out.open("ab") as file:
            file.write(b'{"index": 29, "input": "item 29", "cont')
        predictions_before = len(sim.predictions)
        done = await anyio.run_process([*args, *host(sim), "--resume"], env=cli_env(), check=False)
        assert done.returncode == 0, done.stderr
        assert len(sim.predictions) - predictions_before == total - kept
    records = read_records(out)
    indices = [r["index"] for r in records]
    assert sorted(indices) == list(range(total))  # every item, none twice
    assert all(r["content"] == "a paced reply here" for r in records)
    assert f"{kept} already in" in done.stderr.decode()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery is POSIX-only")
async def test_ctrl_c_cancels_running_predictions_and_says_how_to_resume(
    tmp_path: Path,
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"item {n}\n" for n in range(20)), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    async with Simulator() as sim:
        sim.script(MODEL, *[PACED] * 20)
        command = [*CLI, "batch", str(prompts), "-o", str(out), "--concurrency", "3", *host(sim)]
        async with await anyio.open_process(command, env=cli_env()) as process:
            await sim.wait_for(lambda: line_count(out) >= 2, timeout=30)
            process.send_signal(signal.SIGINT)
            await process.wait()
            assert process.stderr is not None
            chunks = [chunk async for chunk in process.stderr]
        stderr = b"".join(chunks).decode()
        assert process.returncode == 130
        await sim.wait_for(lambda: all(p.status != "running" for p in sim.predictions))
        cancelled = [p for p in sim.predictions if p.cancel_received]
        assert cancelled  # what was running was stopped in LM Studio, not left to finish
    assert "run again with --resume" in stderr
    assert len(read_records(out)) < 20


def test_the_terminal_progress_bar_shows_done_failed_in_flight_and_rate() -> None:
    progress = BatchProgress(total=10, skipped=2, done=3, failed=1, in_flight=4)
    line = render(progress)
    assert line.startswith("[###############...............] 5/10  1 failed  4 in flight  ")
    assert line.endswith("/s")
    assert render(BatchProgress(done=7)).startswith("7 done  0 in flight  ")  # no total: no bar


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
async def test_a_full_disk_is_one_line_and_exit_1(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\ntwo\n", encoding="utf-8")
    done = await run_cli(str(prompts), "-o", "/dev/full", "--simulate")
    assert done.returncode == 1
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert "cannot write /dev/full: No space left on device" in lines[0]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--progress-interval", "-5"], "--progress-interval: expected seconds of at least 0.1"),
        (["--progress-interval", "0"], "--progress-interval: expected seconds of at least 0.1"),
        (["--max-retries", "-1"], "--max-retries: expected a whole number of 0 or more"),
        (["--concurrency", "x"], "--concurrency: expected a whole number"),
        (["--retry-failed"], "--retry-failed goes with --resume"),
    ],
)
async def test_bad_flags_are_usage_errors_naming_the_flag(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\n", encoding="utf-8")
    done = await run_cli(str(prompts), "-o", str(tmp_path / "out.jsonl"), "--simulate", *flags)
    assert done.returncode == 2
    assert message in done.stderr.decode()
    assert "Traceback" not in done.stderr.decode()


async def test_a_directory_as_out_is_named_as_one(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\n", encoding="utf-8")
    done = await run_cli(str(prompts), "-o", str(tmp_path), "--simulate")
    assert done.returncode == 1
    assert f"{tmp_path} is a directory" in done.stderr.decode()


async def test_a_dead_host_is_reported_and_the_live_one_runs_the_batch(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\ntwo\nthree\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    # A bound loopback port that is not listening: connecting is refused, nothing answers.
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        dead_host = f"127.0.0.1:{dead.getsockname()[1]}"
        async with Simulator() as sim:
            live = await run_cli(str(prompts), "-o", str(out), *host(sim), "--host", dead_host)
        none = await run_cli(str(prompts), "-o", str(tmp_path / "x.jsonl"), "--host", dead_host)
    stderr = live.stderr.decode()
    assert live.returncode == 0, stderr
    assert sorted(r["index"] for r in read_records(out)) == [0, 1, 2]
    (report,) = [line for line in stderr.splitlines() if dead_host in line]
    assert "Going on with the other host(s)" in report
    assert f"{sim.host}:{sim.port}" not in report
    assert none.returncode == 1
    assert dead_host in none.stderr.decode()


async def test_failed_items_keep_the_exit_status_until_retry_failed_runs_them(
    tmp_path: Path,
) -> None:
    source = tmp_path / "prompts.txt"
    source.write_text("fine\nflaky\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    async with Simulator() as sim:
        # The first prediction fails on the server; every later one succeeds.
        sim.script(MODEL, ScriptedReply(error=lmstudio_error("Server overloaded")))
        args = [str(source), "-o", str(out), *host(sim), "--concurrency", "1"]
        first = await run_cli(*args)
        resumed = await run_cli(*args, "--resume")
        retried = await run_cli(*args, "--resume", "--retry-failed")
        again = await run_cli(*args, "--resume", "--retry-failed")
    assert first.returncode == 1
    assert resumed.returncode == 1, "a failure still in OUT is not success"
    assert "--resume --retry-failed runs them again" in resumed.stderr.decode()
    assert retried.returncode == 0, retried.stderr.decode()
    assert again.returncode == 0
    records = read_records(out)
    assert [r["index"] for r in records] == [0, 1, 0]
    assert "error" in records[0]
    assert records[2]["content"] == "You said: fine"
    assert "1 done" in retried.stderr.decode()
    assert "0 done" in again.stderr.decode()


async def test_help_says_what_index_means_and_lists_the_connection_flags() -> None:
    done = await anyio.run_process([*CLI, "batch", "--help"], env=cli_env(), check=False)
    text = " ".join(done.stdout.decode().split())
    assert "'index' counts from 0 over INPUT's lines that are not blank" in text
    for flag in ("--api-token", "--timeout", "--retry-failed"):
        assert flag in text


def test_the_summary_says_where_retries_went_and_what_to_do_about_failures() -> None:
    progress = BatchProgress(total=3, done=3, failed=1, retries=2)
    args = argparse.Namespace(output=Path("out.jsonl"))
    one_host = _summary(progress, args, {1}, hosts=1, interrupted=False)
    assert "2 retried after a dropped connection" in one_host
    assert "another host" not in one_host
    assert "--resume --retry-failed runs them again" in one_host
    assert "Stopped early" not in one_host
    two_hosts = _summary(progress, args, set(), hosts=2, interrupted=False)
    assert "2 retried on another host" in two_hosts
    assert "retry-failed" not in two_hosts


async def test_a_resume_refused_for_changed_input_does_not_say_to_resume(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"index": 0, "input": "the original"}\n', encoding="utf-8")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("something else\nsecond\n", encoding="utf-8")
    done = await run_cli(str(prompts), "-o", str(out), "--simulate", "--resume")
    stderr = done.stderr.decode()
    assert done.returncode == 1
    assert "Item 0 of the input differs" in stderr
    assert "run again with --resume" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr

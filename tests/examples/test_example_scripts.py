"""The examples (quickstart, streaming, batch, vision) run end to end with ``--simulate``."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path

import pytest
from example_helpers import example, example_env


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), capture_output=True, text=True, env=example_env(), timeout=60, check=False
    )


def test_quickstart_streams_and_prints_the_stats() -> None:
    done = run(*example("quickstart.py", "--simulate"))

    assert done.returncode == 0, done.stderr
    reply, stats = done.stdout.splitlines()
    assert reply == "You said: What is the meaning of life?"
    # Seconds to three decimals, not a raw float's seventeen digits.
    assert re.fullmatch(
        r"Qwen2\.5 7B Instruct: 8 tokens, first token after \d+\.\d{3} s, stop reason: eosFound",
        stats,
    ), stats


@pytest.mark.parametrize(
    "name",
    [
        "quickstart.py",
        "streaming.py",
        "structured_output.py",
        "tool_use.py",
        "model_management.py",
        "vision.py",
    ],
)
def test_without_lm_studio_an_example_says_what_to_do_in_one_line(name: str) -> None:
    nowhere = f"127.0.0.1:{closed_port()}"
    done = subprocess.run(
        example(name),
        capture_output=True,
        text=True,
        env=example_env(nowhere),
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"{name}: Could not open a websocket to ws://{nowhere}/")
    assert line.endswith("(Or run this example against the bundled simulator: --simulate.)")


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


def test_vision_sends_an_image_to_a_vision_model(tmp_path: Path) -> None:
    done = run(*example("vision.py", "--simulate"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "I see 1 image: checkerboard.png (image, 69 bytes). You said: What is in this picture?\n"
    )
    image = tmp_path / "photo.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(24))
    done = run(*example("vision.py", "--simulate", "--image", str(image), "Describe it."))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "I see 1 image: photo.png (image, 32 bytes). You said: Describe it.\n"

"""examples/ray_batch.py on a local Ray with two simulator processes (needs the 'ray' group)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ray_batch.py"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason="Ray is not installed: `uv sync --group ray` installs it (CI does, on Python 3.11)",
)


@pytest.fixture
def two_simulators() -> Iterator[list[str]]:
    """Two `python -m lmstudio_async.testing` processes on free loopback ports: HOST:PORT each."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "lmstudio_async.testing", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        hosts = []
        for process in processes:
            assert process.stdout is not None
            banner = process.stdout.readline()  # "LM Studio simulator serving ws://HOST:PORT ..."
            hosts.append(banner.split("ws://")[1].split()[0])
        yield hosts
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
            if process.stdout is not None:
                process.stdout.close()


@pytest.mark.timeout(300)  # a local Ray cluster takes a while to start on a busy machine
def test_ray_data_spreads_the_prompts_over_both_hosts(
    two_simulators: list[str], tmp_path: Path
) -> None:
    prompts = [f"prompt number {n}" for n in range(24)]
    source = tmp_path / "prompts.jsonl"
    source.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts), "utf-8")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "LMSTUDIO_BASE_URL"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # Under `uv run` (how the suite runs) Ray would start its workers through `uv run` of the
    # parent's command line, i.e. pytest; this environment already has everything installed.
    env["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
    hosts = [arg for host in two_simulators for arg in ("--host", host)]
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), str(source), str(out), *hosts, "--batch-size", "4"],
        capture_output=True,
        text=True,
        env=env,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    rows = [
        json.loads(line)
        for path in sorted(out.iterdir())
        for line in path.read_text("utf-8").splitlines()
    ]
    assert sorted(row["prompt"] for row in rows) == sorted(prompts)  # each prompt exactly once
    for row in rows:
        assert row["content"] == f"You said: {row['prompt']}"
        assert row["error"] is None
    # Shards are cut by row count, one per host: 24 rows over two hosts is 12 each, by design.
    served = [row["host"] for row in rows]
    assert sorted(served.count(host) for host in two_simulators) == [12, 12]
    assert "0 failed" in done.stderr

"""``examples/model_management.py --simulate`` runs end to end and says what it did."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "model_management.py"


def test_example_runs_against_the_simulator() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("LMSTUDIO_BASE_URL", None)
    completed = subprocess.run(
        [sys.executable, str(EXAMPLE), "--simulate"],
        capture_output=True,
        text=True,
        timeout=50,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "Downloaded models:" in out
    assert "embedding text-embedding-nomic-embed-text-v1.5" in out
    progress = [
        float(line.rsplit(" ", 1)[1].rstrip("%")) for line in out.splitlines() if "loading" in line
    ]
    assert progress
    assert progress == sorted(progress)
    assert progress[-1] == 100
    assert "Loaded example-llm with context 8192" in out
    assert "Reply: You said: What is the capital of France?" in out
    assert "Unloaded example-llm" in out
    assert "embedded 100/100" in out
    assert "Embedded 100 texts into 768-dimensional vectors" in out
    assert "Unloaded example-embedding" in out
    assert out.rstrip().endswith(
        "Still loaded: qwen2.5-7b-instruct, text-embedding-nomic-embed-text-v1.5"
    )

"""``benchmarks/batch_runner.py --quick`` runs end to end, so the batch benchmarks cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_quick_batch_benchmark_writes_its_section(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    output.write_text("# Benchmark results\n\nearlier sections stay\n", encoding="utf-8")
    command = [sys.executable, str(ROOT / "benchmarks" / "batch_runner.py"), "--quick"]
    for _ in range(2):  # the second run replaces the section instead of adding another
        proc = subprocess.run(
            [*command, "--output", str(output)],
            capture_output=True,
            text=True,
            timeout=170,
            check=False,
            cwd=ROOT,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    text = output.read_text(encoding="utf-8")
    assert text.startswith("# Benchmark results\n\nearlier sections stay\n")
    assert text.count("<!-- batch-generated:start -->") == 1
    assert "| `run_batch` |" in text
    assert "| B2. same | four hosts |" in text
    # Killed and resumed: every prompt exactly once, whatever the machine's speed.
    assert (
        "| B3: exactly 300 distinct results, none twice | 300 distinct in 300 lines | yes |" in text
    )

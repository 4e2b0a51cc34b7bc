"""``benchmarks/hot_path.py`` runs, and every interleaved fragment reaches its prediction."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(60)
def test_hot_path_benchmark_delivers_every_fragment() -> None:
    # 30 predictions x 20 fragments, interleaved, 7 frames per "socket read": reads end in the
    # middle of a round, so predictions are woken with different numbers of fragments waiting.
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "hot_path.py"), "30", "20", "7"],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "µs CPU per fragment (30 x 20, 7/read)" in proc.stdout

"""``benchmarks/run.py --quick`` runs end to end, so the benchmark suite cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_quick_run_measures_every_client_and_scenario(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = output.read_text()
    assert "<!-- generated:start -->" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "|---" not in line]
    scenario_rows = [r for r in rows if r.startswith(("| 1.", "| 2.", "| 3.", "| 4.", "| 5."))]
    # Scenarios 1-3 have two metrics each, 4 and 5 one: every client measured in all of them.
    assert len(scenario_rows) == 8
    for row in scenario_rows:
        cells = [c.strip() for c in row.strip("|").split("|")][2:]
        assert len(cells) == 4, row
        assert all(c not in ("failed", "n/a") for c in cells), row
    assert "| S3: every fragment delivered to the right prediction | yes | yes |" in text

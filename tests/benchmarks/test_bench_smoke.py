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
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("| scenario | metric |")))
    end = lines.index("", start)
    rows = lines[start + 2 : end]  # the results table, without its header
    scenario_rows = [r for r in rows if r.startswith(("| 1.", "| 2.", "| 3.", "| 4.", "| 5."))]
    # Scenario 1 on one channel, 2 and 3 on both interleavings, three metrics each (rate, CPU,
    # the server's CPU share); 4 and 5 one metric each.
    assert len(scenario_rows) == 3 + 2 * 3 + 2 * 3 + 2
    for row in scenario_rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        measured = cells[2:]
        assert len(measured) == 4, row
        # AsyncOpenAI reads one HTTP stream per prediction: it has no interleaved run.
        expected = measured[:2] + measured[3:] if "interleaved" in cells[0] else measured
        assert all(c not in ("failed", "n/a") for c in expected), row
    server_rows = [r for r in scenario_rows if "server CPU" in r]
    assert len(server_rows) == 5
    assert all("%" in r for r in server_rows)
    assert "| S3: every fragment delivered to the right prediction | yes | yes |" in text
    # The ratio table: both interleavings of the concurrent scenarios, every ratio measured.
    ratio_rows = [line for line in lines if line.startswith("| ") and line.count("x |") == 3]
    assert len(ratio_rows) == 5

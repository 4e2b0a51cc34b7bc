"""``benchmarks/run.py`` with a subset of clients: rows nobody measured read "n/a"."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "benchmarks" / "run.py"


def _load_run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_a_scenario_no_selected_client_runs_reads_n_a() -> None:
    # `--clients openai`: AsyncOpenAI has no interleaved run (one HTTP stream per prediction),
    # so the interleaved scenarios measure nobody. That used to divide by zero mid-run and lose
    # every result; the row must read n/a and the run go on.
    run = _load_run()
    rate = run.Row("2. concurrent: interleaved", "fragments/s", True, key="2/interleaved/rate")

    def never(client: str) -> dict[str, object]:
        raise AssertionError(f"no client should run, yet {client} was asked to")

    run._measure([rate], ["fragments_per_s"], [], "stream", never, reps=3, timeout=1)
    assert rate.values == {}
    assert rate.failures == {}
    assert run.table([rate], ["openai"]).splitlines()[-1].endswith("| n/a |")


def test_an_empty_client_list_is_a_usage_error_before_anything_runs() -> None:
    proc = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--clients", ","],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--clients names no client" in proc.stderr
    assert "Traceback" not in proc.stderr

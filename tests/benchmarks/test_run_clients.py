"""``benchmarks/run.py`` with a subset of clients: rows nobody measured read "n/a"."""

from __future__ import annotations

import importlib.util
import re
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


def test_a_failed_run_is_listed_once_not_once_per_metric_of_its_scenario() -> None:
    run = _load_run()
    title = "3. many concurrent: sequential"
    rows = [run.Row(title, metric, True) for metric in ("fragments/s", "CPU", "server CPU")]
    for row in rows:
        row.values["openai"] = [1.0, 2.0, 3.0]
        row.failures["openai"] = ["openai/stream failed: APITimeoutError"] * 2
    text = run.report(rows, ["openai"], run.QUICK, 1.0)
    failures = [line for line in text.splitlines() if "run(s) failed; last:" in line]
    assert failures == [
        f"- openai AsyncOpenAI (SSE), {title}: 2 of 5 run(s) failed; last: "
        "openai/stream failed: APITimeoutError"
    ]


def test_the_report_names_the_commit_it_measured() -> None:
    # A table is only comparable with the code it ran on; the package version stays the same
    # across commits.
    run = _load_run()
    text = run.report([], ["ours"], run.QUICK, 1.0)
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    if head.returncode != 0:
        assert "- Code: unknown (not a git checkout)" in text
        return
    assert re.search(
        rf"^- Code: commit {head.stdout.strip()} "
        r"\((working tree clean|with uncommitted changes)\)$",
        text,
        re.MULTILINE,
    )

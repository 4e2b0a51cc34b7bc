"""Scenario 5 (memory on a stalled server) reports a failure as what it is."""

from __future__ import annotations

import gc
import importlib
import logging
from pathlib import Path

import pytest

from lmstudio_async.testing import Faults, ScriptedReply, Simulator

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.anyio
@pytest.mark.parametrize("client", ["ours", "floor"])
async def test_a_memory_run_whose_predictions_never_arrive_says_so(
    client: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The failure scenario 5 had: the wait for every first fragment timing out. It must be
    # reported as that, not buried under each abandoned task's "client closed" error.
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    worker = importlib.import_module("_worker")
    async with Simulator() as sim:
        sim.faults = Faults(stall_after_fragments=1)
        late = Faults(delay_before_first_fragment=60)
        sim.add_rule(ScriptedReply(content="late", faults=late), last_user_message="^p")
        params = {"port": sim.port, "predictions": 5, "arrival_limit": 1}
        with pytest.raises(SystemExit) as stopped:
            await worker.memory(client, params)
    assert str(stopped.value) == (
        "only 0 of 5 predictions got their first fragment within 1 s (0 failed)"
    )
    gc.collect()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []

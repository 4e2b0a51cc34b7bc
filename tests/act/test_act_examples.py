"""``examples/structured_output.py`` and ``examples/tool_use.py`` run against the simulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(name: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("LMSTUDIO_BASE_URL", None)
    env.pop("LMSTUDIO_MODEL", None)
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--simulate"],
        capture_output=True,
        text=True,
        timeout=50,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_structured_output_example() -> None:
    out = _run("structured_output.py").splitlines()
    assert out == [
        "Dune by Frank Herbert (1965); genres: sf, epic",
        "Not a Book: 'Dune is a novel about a desert planet.'",
    ]


def test_tool_use_example() -> None:
    out = _run("tool_use.py").splitlines()
    # Every message act() adds is shown: text, each tool call asked for, each result.
    assert out[:10] == [
        "[assistant] Let me look those up.",
        "[assistant] calls get_temperature(city='Paris')",
        "[assistant] calls get_temperature(city='Oslo')",
        "[assistant] calls get_temperature(city='Atlantis')",
        "[tool] get_temperature returned 18.5",
        "[tool] get_temperature returned 4.0",
        '[tool] get_temperature returned {"error":"The tool call was denied: no weather data '
        'for Atlantis"}',
        "[assistant] calls add(a=18.5, b=4)",
        "[tool] add returned 22.5",
        "[assistant] Together that makes 22.5 degrees.",
    ]
    assert out[10] == (
        "round 0: eosFound; get_temperature -> 18.5, get_temperature -> 4.0, "
        'get_temperature -> {"error":"The tool call was denied: no weather data for Atlantis"}'
    )
    assert out[11:] == [
        "round 1: eosFound; add -> 22.5",
        "round 2: eosFound; no tool calls",
        "Answer: Together that makes 22.5 degrees.",
    ]

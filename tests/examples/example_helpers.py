"""Running ``examples/*.py`` as subprocesses (example tests)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import anyio
from anyio.abc import Process

from lmstudio_async.testing import Simulator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str, *args: str) -> list[str]:
    """The command line that runs ``examples/<name>`` with ``args``."""
    return [sys.executable, str(EXAMPLES / name), *args]


def example_env(base_url: str | None = None) -> dict[str, str]:
    """The environment for an example: pointed at ``base_url`` when given, else nowhere."""
    env = {k: v for k, v in os.environ.items() if k != "LMSTUDIO_BASE_URL"}
    if base_url is not None:
        env["LMSTUDIO_BASE_URL"] = base_url
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def start_app(sim: Simulator) -> tuple[Process, str]:
    """uvicorn on an ephemeral port, pointed at ``sim`` through LMSTUDIO_BASE_URL."""
    process = await anyio.open_process(
        example("fastapi_app.py", "--port", "0"), env=example_env(sim.base_url)
    )
    assert process.stderr is not None
    log = ""
    with anyio.fail_after(20):
        while (match := re.search(r"Uvicorn running on (http://\S+)", log)) is None:
            log += (await process.stderr.receive()).decode()
    return process, match.group(1)

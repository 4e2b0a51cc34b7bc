"""Running ``examples/*.py`` as subprocesses (example tests)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

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

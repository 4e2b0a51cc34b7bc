"""Helpers for running ``python -m lmstudio_async`` as a real subprocess (CLI tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Sequence

CLI = (sys.executable, "-m", "lmstudio_async")


def cli_env() -> dict[str, str]:
    """The test's environment minus anything that would point the CLI at an LM Studio."""
    env = {k: v for k, v in os.environ.items() if k not in {"LMSTUDIO_BASE_URL"}}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(args: Sequence[str], *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion (for commands that need no in-process simulator)."""
    return subprocess.run(
        [*CLI, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=30,
        check=False,
    )


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0

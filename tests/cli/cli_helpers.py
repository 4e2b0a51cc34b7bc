"""Helpers for running ``python -m lmstudio_async`` as a real subprocess (CLI tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import anyio

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


# The console script `uv sync` installed beside this interpreter: what a user types.
INSTALLED = str(Path(sys.executable).with_name("lmstudio-async"))


async def run_installed(
    *args: str | bytes, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> tuple[int, bytes, str]:
    """Run the installed ``lmstudio-async`` to completion: exit code, stdout, stderr.

    ``env``: variables to set on top of ``cli_env()``."""
    done = await anyio.run_process(
        [INSTALLED, *args], input=stdin, env=cli_env() | (env or {}), check=False
    )
    return done.returncode, done.stdout, done.stderr.decode()


async def in_shell(pipeline: str, **names: str) -> tuple[int, str, str]:
    """Run a bash ``pipeline`` with ``$LMS`` the installed command and ``$NAME`` for each name.

    The pipeline's first command should send its stderr to ``"$ERRFILE"``. Returns that
    command's exit status (``${PIPESTATUS[0]}``), the pipeline's stdout and that stderr.
    """
    env = {**cli_env(), "LMS": INSTALLED, **names}
    wrapped = f'{pipeline}; echo "${{PIPESTATUS[0]}}" >"$STATUSFILE"'
    with tempfile.TemporaryDirectory() as tmp:
        env["ERRFILE"] = str(Path(tmp) / "stderr")
        env["STATUSFILE"] = str(Path(tmp) / "status")
        done = await anyio.run_process(["bash", "-c", wrapped], env=env, check=False)
        status = (await anyio.Path(env["STATUSFILE"]).read_text()).strip()
        stderr = await anyio.Path(env["ERRFILE"]).read_text()
    return int(status), done.stdout.decode(errors="replace"), stderr

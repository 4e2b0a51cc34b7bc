"""``lmstudio-async simulate --script/--tokens-per-second/--quiet`` as a separate process."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import lmstudio
import pytest

import lmstudio_async as lms

pytestmark = pytest.mark.anyio

CLI = (sys.executable, "-m", "lmstudio_async")
MODEL = "qwen2.5-7b-instruct"

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_rules() -> dict[str, Any]:
    """The rules file the README shows under "The command line" (so the README stays true)."""
    section = README.read_text(encoding="utf-8").split("## The command line", 1)[1]
    match = re.search(r"```json\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the README lost its rules-file example"
    rules: dict[str, Any] = json.loads(match.group(1))
    return rules


ACT_RULES = _readme_rules()


@asynccontextmanager
async def simulate(*options: str) -> AsyncIterator[tuple[str, anyio.abc.Process]]:
    """``simulate --port 0 OPTIONS`` running; yields its ``host:port`` and the process."""
    async with await anyio.open_process([*CLI, "simulate", "--port", "0", *options]) as server:
        assert server.stdout is not None
        with anyio.fail_after(20):
            banner = (await server.stdout.receive()).decode()
        assert banner.startswith("LM Studio simulator serving ws://127.0.0.1:"), banner
        try:
            yield banner.split()[4].removeprefix("ws://"), server
        finally:
            if server.returncode is None:
                server.send_signal(signal.SIGINT)
            with anyio.fail_after(20):
                await server.wait()


async def stderr_lines(server: anyio.abc.Process, count: int) -> list[str]:
    """The next ``count`` lines the server writes to stderr."""
    assert server.stderr is not None
    buffer = ""
    with anyio.fail_after(20):
        while buffer.count("\n") < count:
            buffer += (await server.stderr.receive()).decode()
    return buffer.splitlines()


def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


def _official_act(api_host: str) -> list[str]:
    messages: list[Any] = []
    with lmstudio.Client(api_host) as client:
        model = client.llm.model(MODEL)
        result = model.act("What is 6 times 7?", [multiply], on_message=messages.append)
    assert result.rounds == 2
    return [str(message.to_dict()) for message in messages]


async def test_official_sdk_act_calls_a_tool_and_finishes_against_a_scripted_simulate(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(ACT_RULES))
    async with simulate("--script", str(rules)) as (address, server):
        messages = await anyio.to_thread.run_sync(_official_act, address)
        lines = await stderr_lines(server, 2)
    assert "'name': 'multiply'" in messages[0]
    assert "42" in messages[1]  # the tool's result went back to the model
    assert "6 times 7 is 42." in messages[2]
    assert all("outcome=finished cancel_received=no" in line for line in lines), lines


async def test_each_prediction_logs_one_line_with_its_outcome_and_the_cancel() -> None:
    async with simulate("--tokens-per-second", "20") as (address, server):
        async with lms.LMStudioClient(f"ws://{address}") as client:
            model = await client.llm.model(MODEL)
            stream = model.respond(" ".join(["word"] * 200))
            async for _ in stream:
                await stream.cancel()
                break
            result = await stream.result()
        [line] = await stderr_lines(server, 1)
    assert result.stats.stop_reason == "userStopped"
    assert f"model={MODEL} endpoint=predict outcome=cancelled cancel_received=yes" in line
    assert "connection=" in line
    assert "channel=" in line
    sent = int(line.rsplit("fragments_sent=", 1)[1])
    assert 1 <= sent < 200  # paced: the cancel arrived long before the end


async def test_a_prediction_still_running_at_ctrl_c_is_logged_as_disconnected() -> None:
    async with (
        simulate("--tokens-per-second", "5") as (address, server),
        lms.LMStudioClient(f"ws://{address}") as client,
    ):
        model = await client.llm.model(MODEL)
        stream = model.respond(" ".join(["word"] * 200))
        # One fragment in, iterator kept open (leaving an `async for` would cancel it): the
        # prediction is running on the server.
        fragments = aiter(stream)
        await anext(fragments)
        server.send_signal(signal.SIGINT)
        assert server.stderr is not None
        rest = b""
        with anyio.fail_after(20):
            async for chunk in server.stderr:
                rest += chunk
            await server.wait()
    assert b"endpoint=predict outcome=disconnected" in rest, rest


async def test_quiet_logs_nothing() -> None:
    async with simulate("--quiet") as (address, server):
        async with lms.LMStudioClient(f"ws://{address}") as client:
            model = await client.llm.model(MODEL)
            assert (await model.respond("hi")).content == "You said: hi"
        server.send_signal(signal.SIGINT)
        assert server.stderr is not None
        rest = b""
        with anyio.fail_after(20):
            async for chunk in server.stderr:
                rest += chunk
            # Reap it here: leaving `simulate` with the process unreaped would signal it again.
            # (Its exit status on Ctrl-C is tests/cli's business.)
            await server.wait()
    assert b"prediction" not in rest, rest


def test_a_bad_script_is_refused_at_start_with_the_rule_number(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [ACT_RULES["rules"][0], {"match": {"times": "2"}}]}))
    done = subprocess.run(
        [*CLI, "simulate", "--port", "0", "--script", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""  # never started serving
    assert done.stderr.strip() == (
        f"lmstudio-async simulate: --script {rules}: rule 2: missing 'reply'"
    )


def test_chat_simulate_takes_the_script_and_refuses_it_without_simulate(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"reply": {"content": "Scripted hello."}}]}))
    done = subprocess.run(
        [
            *CLI,
            "chat",
            "--simulate",
            "--script",
            str(rules),
            "--tokens-per-second",
            "500",
            "--no-context-limit",
            "Hi",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "Scripted hello.\n"), done.stderr
    refused = subprocess.run(
        [*CLI, "chat", "--host", "127.0.0.1:9", "--script", str(rules), "Hi"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "--script, --tokens-per-second and --no-context-limit need --simulate" in (
        refused.stderr
    )


def test_simulate_help_describes_the_options() -> None:
    done = subprocess.run(
        [*CLI, "simulate", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0
    help_text = " ".join(done.stdout.split())
    for option in ("--script FILE", "--tokens-per-second N", "--quiet", "--no-context-limit"):
        assert option in help_text
    assert '"last_user_message" (a Python re regex, searched anywhere in the message)' in (
        help_text
    )
    assert '"prompt_tokens_per_second"' in help_text
    assert "One line per finished prediction goes to stderr" in help_text

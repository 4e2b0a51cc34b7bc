"""The installed command in ordinary shell use: pipes that close early, bytes that are not
UTF-8, reasoning models, empty messages. Never a traceback."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_helpers import INSTALLED, cli_env, in_shell, run_installed

from lmstudio_async.testing import ScriptedReply, Simulator

pytestmark = pytest.mark.anyio

LONG_REPLY = " ".join(f"word{n}" for n in range(500))


async def test_a_reader_that_stops_early_ends_a_one_shot_chat_quietly() -> None:
    async with Simulator() as sim:
        sim.script("qwen2.5-7b-instruct", ScriptedReply(content=LONG_REPLY, tokens_per_second=50))
        status, out, err = await in_shell(
            '"$LMS" chat --host "$HOST" "Talk for a while." 2>"$ERRFILE" | head -c 10',
            HOST=f"{sim.host}:{sim.port}",
        )
        # The reader left, so nobody reads the rest: LM Studio is told to stop.
        await sim.wait_for(lambda: sim.predictions[-1].cancel_received, timeout=10)
    assert out == LONG_REPLY[:10]
    assert err == ""
    assert status == 141  # 128 + SIGPIPE, what `git log | head` reports
    assert sim.predictions[-1].fragments_sent < 500


async def test_a_reader_that_stops_early_ends_a_multi_turn_chat_quietly(tmp_path: Path) -> None:
    many_lines = tmp_path / "many_lines.txt"
    many_lines.write_text("".join(f"question {n}\n" for n in range(50)))
    async with Simulator() as sim:
        replies = [ScriptedReply(content=f"reply {n}", time_to_first_token=0.05) for n in range(50)]
        sim.script("qwen2.5-7b-instruct", *replies)
        status, out, err = await in_shell(
            '"$LMS" chat --host "$HOST" <"$INPUT" 2>"$ERRFILE" | head -2',
            HOST=f"{sim.host}:{sim.port}",
            INPUT=str(many_lines),
        )
        asked = len(sim.predictions)
    assert out == "reply 0\nreply 1\n"
    assert "Traceback" not in err
    assert all(line.startswith("[Qwen2.5 7B Instruct]") for line in err.splitlines()), err
    assert status == 141
    assert asked < 50  # it stopped asking once nobody read the answers


async def test_undecodable_bytes_in_the_prompt_are_replaced_and_said_once() -> None:
    async with Simulator() as sim:
        code, out, err = await run_installed("chat", "--host", f"{sim.host}:{sim.port}", b"caf\xe9")
        sent = sim.predictions[-1].history
    assert code == 0, err
    assert out.decode() == "You said: caf\N{REPLACEMENT CHARACTER}\n"
    assert err.count("not valid UTF-8") == 1
    assert "Traceback" not in err
    assert sent is not None
    assert sent["messages"][-1]["content"][0]["text"] == "caf\N{REPLACEMENT CHARACTER}"


async def test_undecodable_bytes_on_stdin_are_replaced_and_said_once() -> None:
    async with Simulator() as sim:
        code, out, err = await run_installed(
            "chat", "--host", f"{sim.host}:{sim.port}", stdin=b"hello \xff\xfe world\nagain \xff\n"
        )
    assert code == 0, err
    assert out.decode().splitlines() == [
        "You said: hello \ufffd\ufffd world",
        "You said: again \ufffd",
    ]
    assert err.count("not valid UTF-8") == 1
    assert "Traceback" not in err


async def test_reasoning_and_stats_get_lines_of_their_own_when_stderr_is_a_file() -> None:
    code, out, err = await run_installed(
        "chat", "--simulate", "--model", "qwen3-4b-thinking", "What is 2+2?"
    )
    assert code == 0, err
    assert out.decode() == "You said: What is 2+2?\n"  # stdout is the answer alone
    lines = err.splitlines()
    # The simulated thinking model reasons "...I will answer: <the answer>".
    assert lines[-2] == "The user wants a reply. I will answer: You said: What is 2+2?"
    assert lines[-1].startswith("[Qwen3 4B Thinking 2507] ")


def test_reasoning_is_dimmed_on_a_terminal() -> None:
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [INSTALLED, "chat", "--simulate", "--model", "qwen3-4b-thinking", "Hi"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,
            env={k: v for k, v in cli_env().items() if k != "NO_COLOR"} | {"TERM": "xterm"},
            timeout=30,
            check=False,
        )
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the terminal has no writer left
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
    assert done.returncode == 0
    assert done.stdout == b"You said: Hi\n"
    assert shown.count(b"\x1b[2m") == shown.count(b"\x1b[0m") > 0  # every dim is reset
    assert b"\x1b[2mThe " in shown
    plain = shown.replace(b"\x1b[2m", b"").replace(b"\x1b[0m", b"")
    # The stats start on a line of their own after the reasoning.
    assert b"I will answer: You said: Hi\r\n[Qwen3 4B Thinking 2507]" in plain


@pytest.mark.parametrize("prompt", ["", "   "])
async def test_an_empty_message_is_refused_with_one_line(prompt: str) -> None:
    async with Simulator() as sim:
        code, out, err = await run_installed("chat", "--host", f"{sim.host}:{sim.port}", prompt)
        predictions = len(sim.predictions)
    assert code == 2
    assert out == b""
    assert err == (
        "lmstudio-async: the message is empty. Give a PROMPT with some text, or none at all "
        "for a multi-turn chat.\n"
    )
    assert predictions == 0


@pytest.mark.parametrize("where", [("-v", "chat"), ("chat", "--verbose")])
async def test_verbose_shows_what_the_sdk_did_but_not_the_prompt(where: tuple[str, str]) -> None:
    code, out, err = await run_installed(*where, "--simulate", "a private thought")
    assert code == 0, err
    assert out == b"You said: a private thought\n"
    assert "lmstudio_async: llm: connecting to ws://127.0.0.1:" in err
    assert "with a guest identity" in err
    assert "(predict) opened" in err
    assert "llm: disconnected from" in err
    assert "a private thought" not in err


async def test_without_verbose_there_is_no_debug_output() -> None:
    code, _, err = await run_installed("chat", "--simulate", "Hi")
    assert code == 0, err
    assert "lmstudio_async:" not in err


# Every command, not only chat: the whole kind of input a shell can hand over.
@pytest.mark.parametrize(
    "command",
    [
        ["load", "--simulate", b"caf\xe9"],
        ["get", "--simulate", b"caf\xe9"],
        ["unload", "--simulate", b"caf\xe9"],
        ["chat", "--simulate", "--model", b"caf\xe9", "Hi"],
    ],
    ids=["load", "get", "unload", "chat-model"],
)
async def test_undecodable_bytes_in_any_argument_are_replaced_for_every_command(
    command: list[str | bytes],
) -> None:
    code, out, err = await run_installed(*command)
    assert "Traceback" not in err
    assert code == 1, err
    assert out == b""
    lines = err.splitlines()
    assert lines[0].startswith("lmstudio-async: the input is not valid UTF-8;"), err
    assert len(lines) == 2, err
    assert lines[1].startswith("lmstudio-async: ")
    assert "caf\N{REPLACEMENT CHARACTER}" in lines[1]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full device")
@pytest.mark.parametrize(
    "command", [["chat", "--simulate", "Hi"], ["models", "--simulate"]], ids=["chat", "models"]
)
async def test_output_to_a_full_disk_is_one_line_not_a_traceback(command: list[str]) -> None:
    status, _, err = await in_shell('"$LMS" ' + " ".join(command) + ' >/dev/full 2>"$ERRFILE"')
    assert err == "lmstudio-async: cannot write the output: No space left on device.\n"
    assert status == 1


@pytest.mark.parametrize("host", ["[::1", "ws://[::1:1234", "127.0.0.1:99999", "ftp://h:1"])
async def test_a_malformed_host_is_a_usage_error_naming_the_flag(host: str) -> None:
    code, out, err = await run_installed("chat", "--host", host, "Hi")
    assert "Traceback" not in err
    assert code == 2
    assert out == b""
    last = err.splitlines()[-1]
    assert last.startswith(f"lmstudio-async chat: error: argument --host: {host!r}: "), err
    assert "base_url" not in err
    assert "use e.g. localhost:1234" in last


async def test_a_malformed_base_url_variable_is_one_line_naming_the_variable() -> None:
    code, out, err = await run_installed("models", env={"LMSTUDIO_BASE_URL": "[::1"})
    assert code == 2
    assert out == b""
    assert err == (
        "lmstudio-async: $LMSTUDIO_BASE_URL is '[::1': it is not a valid address (Invalid IPv6 "
        "URL). Set it to an address (e.g. localhost:1234, 192.168.1.5:1234 or "
        "http://localhost:1234), or unset it to find the local LM Studio.\n"
    )


async def test_credentials_in_the_host_point_at_the_token_flag_not_at_python() -> None:
    code, _, err = await run_installed("chat", "--host", "user@127.0.0.1:1", "Hi")
    assert code == 2
    assert "api_token=" not in err
    assert err.splitlines()[-1].endswith(
        "it contains credentials (a user name or password); give the token with --api-token "
        "(or $LM_API_TOKEN) instead"
    )


@pytest.mark.parametrize("verbose", [False, True])
def test_an_unforeseen_error_is_one_line_asking_for_a_report(verbose: bool) -> None:
    # A bug stands in for every error no command turned into a message: the CLI's edge must
    # still print one line (and the traceback only when asked with -v).
    program = textwrap.dedent(
        """
        import sys
        from lmstudio_async._cli import _app, _models

        async def broken(args, interrupts):
            raise RuntimeError("boom")

        _models.run_models = broken
        sys.exit(_app.main(sys.argv[1:]))
        """
    )
    flags = ["-v"] if verbose else []
    done = subprocess.run(
        [sys.executable, "-c", program, *flags, "models", "--simulate"],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    last = done.stderr.splitlines()[-1]
    assert last == (
        "lmstudio-async: unexpected error: RuntimeError: boom. This is a bug in lmstudio-async; "
        "please report it with the output of the same command run with -v."
    )
    assert ("Traceback" in done.stderr) is verbose
    if not verbose:
        assert done.stderr == last + "\n"

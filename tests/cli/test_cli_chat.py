"""``lmstudio-async chat``: streamed reply on stdout, stats on stderr, multi-turn, Ctrl-C."""

from __future__ import annotations

import os
import pathlib
import pty
import signal
import subprocess

import anyio
import pytest
from cli_helpers import CLI, cli_env, run_cli

from lmstudio_async.testing import ScriptedReply, Simulator

pytestmark = pytest.mark.anyio


def test_simulate_streams_the_reply_to_stdout_and_stats_to_stderr() -> None:
    done = run_cli(["chat", "--simulate", "What is the meaning of life?"])

    assert done.returncode == 0, done.stderr
    assert done.stdout == "You said: What is the meaning of life?\n"
    stats = done.stderr.strip().splitlines()[-1]
    assert stats.startswith("[Qwen2.5 7B Instruct] 8 tokens, first token after ")
    assert stats.endswith("stop reason: eosFound")


async def test_options_reach_the_server() -> None:
    async with Simulator() as sim:
        done = await anyio.run_process(
            [
                *CLI,
                "chat",
                "--host",
                f"{sim.host}:{sim.port}",
                "--system",
                "Be terse.",
                "--temperature",
                "0.25",
                "--max-tokens",
                "7",
                "--model",
                "qwen2.5-7b-instruct",
                "Hi",
            ],
            env=cli_env(),
            check=False,
        )
        assert done.returncode == 0, done.stderr
        record = sim.predictions[-1]
    assert record.history is not None
    roles = [m["role"] for m in record.history["messages"]]
    assert roles == ["system", "user"]
    fields = {
        f["key"]: f["value"]
        for layer in record.config_stack["layers"]
        for f in layer["config"]["fields"]
    }
    assert fields["llm.prediction.temperature"] == 0.25
    assert fields["llm.prediction.maxPredictedTokens"] == {"checked": True, "value": 7}


async def test_without_a_prompt_it_chats_line_by_line_until_exit() -> None:
    async with Simulator() as sim:
        done = await anyio.run_process(
            [*CLI, "chat", "--host", f"{sim.host}:{sim.port}"],
            input=b"first question\n\nsecond question\n/exit\nnever sent\n",
            env=cli_env(),
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode().splitlines() == [
            "You said: first question",
            "You said: second question",
        ]
        assert len(sim.predictions) == 2
        second = sim.predictions[1].history
    assert second is not None
    # The second turn carries the whole conversation so far, the first reply included.
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]


async def test_ctrl_c_cancels_the_prediction_in_lm_studio_and_exits_130() -> None:
    async with Simulator() as sim:
        long_reply = " ".join(f"word{n}" for n in range(400))
        sim.script("qwen2.5-7b-instruct", ScriptedReply(content=long_reply, tokens_per_second=40))
        async with await anyio.open_process(
            [*CLI, "chat", "--host", f"{sim.host}:{sim.port}", "Talk for a while."],
            env=cli_env(),
        ) as process:
            assert process.stdout is not None
            assert process.stderr is not None
            first = await process.stdout.receive()
            assert first.startswith(b"word0")
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(10):
                code = await process.wait()
            stderr = b""
            async for chunk in process.stderr:
                stderr += chunk
        assert code == 130, stderr.decode()
        await sim.wait_for(lambda: sim.predictions[-1].cancel_received, timeout=5)
        record = sim.predictions[-1]
    assert record.status == "cancelled"
    assert record.fragments_sent < 400
    assert stderr.decode().strip().endswith("stop reason: userStopped")


def test_a_closed_port_gives_one_line_and_exit_code_1() -> None:
    from cli_helpers import closed_port

    port = closed_port()
    done = run_cli(["chat", "--host", f"127.0.0.1:{port}", "Hi"])

    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        f"lmstudio-async: no LM Studio answered on 127.0.0.1:{port} (Connection refused). "
    )
    assert "ssl:default" not in lines[0]  # aiohttp's wording is not the user's business
    assert "--simulate" in lines[0]


def test_no_lm_studio_anywhere_gives_one_line_naming_the_hosts_tried() -> None:
    from cli_helpers import port_is_open

    from lmstudio_async._discovery import WELL_KNOWN_PORTS

    busy = [p for p in (*WELL_KNOWN_PORTS, 1234) if port_is_open(p)]
    if busy:
        pytest.skip(
            f"something listens on 127.0.0.1 port {busy}, which discovery probes; stop it "
            "(an LM Studio or a simulator) to run this test"
        )
    done = run_cli(["chat", "Hi"])

    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("lmstudio-async: no LM Studio answered on 127.0.0.1:41343, ")
    assert "127.0.0.1:1234" in lines[0]
    assert "--simulate" in lines[0]


def test_python_dash_m_and_the_console_script_are_the_same_program() -> None:
    done = run_cli(["--version"])
    assert done.returncode == 0
    assert done.stdout.startswith("lmstudio-async ")
    assert (
        subprocess.run([*CLI, "chat", "--bogus"], capture_output=True, check=False).returncode == 2
    )


def test_image_goes_to_a_vision_model(tmp_path: pathlib.Path) -> None:
    image = tmp_path / "cat.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    done = run_cli(
        [
            "chat",
            "--simulate",
            "--model",
            "google/gemma-3-4b",
            "--image",
            str(image),
            "What is this?",
        ]
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "I see 1 image: cat.png (image, 108 bytes). You said: What is this?\n"


def test_a_file_that_is_not_an_image_is_a_one_line_error(tmp_path: pathlib.Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("just text")
    done = run_cli(["chat", "--simulate", "--image", str(notes), "What is this?"])
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        f"lmstudio-async: --image {notes} is not an image LM Studio can read (it takes PNG, "
        "JPEG, WebP, GIF or BMP). Give the path of an image file.\n"
    )


def test_a_missing_image_file_is_a_one_line_error_naming_the_flag(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "missing.png"
    done = run_cli(["chat", "--simulate", "--image", str(missing), "What is this?"])
    assert done.returncode == 1
    assert done.stderr == f"lmstudio-async: --image {missing}: No such file or directory.\n"


async def receive_until(stream: anyio.abc.ByteReceiveStream, marker: bytes, seen: bytes) -> bytes:
    """Read ``stream`` until ``marker`` appears in what was read (``seen`` included)."""
    with anyio.fail_after(15):
        while marker not in seen:
            seen += await stream.receive()
    return seen


async def test_ctrl_c_in_multi_turn_chat_stops_the_reply_and_returns_to_the_prompt() -> None:
    async with Simulator() as sim:
        long_reply = " ".join(f"word{n}" for n in range(400))
        sim.script(
            "qwen2.5-7b-instruct",
            ScriptedReply(content=long_reply, tokens_per_second=40),
            ScriptedReply(content="Fine, briefly then."),
        )
        # A person at a terminal: stdin is a pseudo-terminal, typed lines go to its controller.
        controller, terminal = pty.openpty()
        try:
            async with await anyio.open_process(
                [*CLI, "chat", "--host", f"{sim.host}:{sim.port}"], env=cli_env(), stdin=terminal
            ) as process:
                assert process.stdout is not None
                assert process.stderr is not None
                os.write(controller, b"Talk for a while.\n")
                out = await receive_until(process.stdout, b"word0", b"")
                process.send_signal(signal.SIGINT)
                err = await receive_until(process.stderr, b"stop reason: userStopped", b"")
                # Still running, still at the prompt: the conversation goes on.
                os.write(controller, b"Shorter, please.\n")
                out = await receive_until(process.stdout, b"Fine, briefly then.\n", out)
                os.write(controller, b"\x04")  # Ctrl-D at the start of a line
                with anyio.fail_after(15):
                    code = await process.wait()
        finally:
            os.close(terminal)
            os.close(controller)
        assert code == 0, err
        first, second = sim.predictions
    assert first.status == "cancelled"
    assert first.cancel_received
    assert second.history is not None
    # The stopped reply stays in the conversation as far as it got.
    messages = second.history["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"][0]["text"].startswith("word0")


async def test_ctrl_c_at_the_prompt_ends_a_multi_turn_chat() -> None:
    async with (
        Simulator() as sim,
        await anyio.open_process(
            [*CLI, "chat", "--host", f"{sim.host}:{sim.port}"], env=cli_env()
        ) as process,
    ):
        assert process.stdin is not None
        assert process.stderr is not None
        await process.stdin.send(b"Hello\n")
        await receive_until(process.stderr, b"stop reason: eosFound\n", b"")
        process.send_signal(signal.SIGINT)  # waiting for the next line, stdin still open
        with anyio.fail_after(15):
            code = await process.wait()
    assert code == 130


async def test_ctrl_c_with_lines_from_a_pipe_stops_the_reply_and_the_program() -> None:
    # Piped lines are read at once: returning to the "prompt" would answer the next line
    # immediately, so Ctrl-C could never stop the program.
    async with Simulator() as sim:
        long_reply = " ".join(f"word{n}" for n in range(400))
        replies = [ScriptedReply(content=long_reply, tokens_per_second=40) for _ in range(3)]
        sim.script("qwen2.5-7b-instruct", *replies)
        async with await anyio.open_process(
            [*CLI, "chat", "--host", f"{sim.host}:{sim.port}"], env=cli_env()
        ) as process:
            assert process.stdin is not None
            assert process.stdout is not None
            assert process.stderr is not None
            await process.stdin.send(b"one\ntwo\nthree\n")
            await receive_until(process.stdout, b"word0", b"")
            process.send_signal(signal.SIGINT)
            err = await receive_until(process.stderr, b"stop reason: userStopped", b"")
            with anyio.fail_after(15):
                code = await process.wait()
            async for chunk in process.stderr:
                err += chunk
        assert code == 130, err.decode()
        assert len(sim.predictions) == 1
        assert sim.predictions[0].cancel_received
    assert b"Traceback" not in err

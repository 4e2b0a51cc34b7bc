"""Error lines phrased for the shell: flags and environment variables, true, one line, once."""

from __future__ import annotations

import argparse
import errno
import socket
import subprocess

import anyio
import pytest
from aiohttp import web
from cli_helpers import INSTALLED, cli_env, run_installed

from lmstudio_async._cli._simulate import _cannot_listen
from lmstudio_async.testing import Faults, ScriptedReply, Simulator

pytestmark = pytest.mark.anyio

TOKEN = "sk-lm-abcdefgh:0123456789abcdefghij"


def one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


async def test_a_server_that_wants_a_token_says_which_flag_gives_one() -> None:
    async with Simulator(api_token=TOKEN) as sim:
        host = f"{sim.host}:{sim.port}"
        code, _, err = await run_installed("models", "--host", host)
        assert code == 1
        assert one_line(err) == (
            f"lmstudio-async: LM Studio at {host} requires an API token. "
            "Pass --api-token sk-lm-... or set $LM_API_TOKEN."
        )
        code, _, err = await run_installed("models", "--host", host, "--api-token", "sk-lm-x:y")
        assert code == 2
        assert "argument --api-token: expected the form sk-lm-<8 letters" in err
        assert "sk-lm-x:y" not in err  # a secret, even mistyped
        wrong = "sk-lm-abcdefgh:9999999999abcdefghij"
        code, _, err = await run_installed("models", "--host", host, "--api-token", wrong)
        assert code == 1
        assert one_line(err) == (
            f"lmstudio-async: LM Studio at {host} refused the API token. Check --api-token (or "
            "$LM_API_TOKEN); LM Studio's Developer page lists the valid tokens."
        )
        code, out, err = await run_installed("models", "--host", host, "--api-token", TOKEN)
    assert code == 0, err
    assert b"qwen2.5-7b-instruct" in out


async def test_timeout_bounds_the_wait_and_the_error_names_the_flag() -> None:
    async with Simulator() as sim:
        sim.faults = Faults(stall_auth=True)
        host = f"{sim.host}:{sim.port}"
        code, _, err = await run_installed("models", "--host", host, "--timeout", "1")
    assert code == 1
    assert one_line(err) == (
        f"lmstudio-async: LM Studio at {host} did not answer within 1 s. Check that it is "
        "running there, or allow longer with --timeout SECONDS."
    )


async def test_a_web_server_that_is_not_lm_studio_is_not_a_lost_connection() -> None:
    runner = web.AppRunner(web.Application())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        code, _, err = await run_installed("models", "--host", f"127.0.0.1:{port}")
    finally:
        await runner.cleanup()
    assert code == 1
    line = one_line(err)
    assert line.startswith(
        f"lmstudio-async: 127.0.0.1:{port} answered with HTTP 404 instead of LM Studio's "
        "websocket: is that LM Studio's address?"
    )
    assert "lost the connection" not in line


async def test_a_dropped_connection_is_said_once_without_python_advice() -> None:
    async with Simulator() as sim:
        sim.script(
            "qwen2.5-7b-instruct",
            ScriptedReply(content="a b c d e f", faults=Faults(drop_after_fragments=2)),
        )
        host = f"{sim.host}:{sim.port}"
        code, _, err = await run_installed("chat", "--host", host, "Hi")
    assert code == 1
    assert one_line(err) == (
        f"lmstudio-async: the connection to LM Studio at {host} ended before the command "
        "finished. Is LM Studio still running? (-v shows what happened.)"
    )


async def test_an_embedding_model_in_chat_gets_a_shell_answer() -> None:
    code, _, err = await run_installed(
        "chat", "--simulate", "--model", "text-embedding-nomic-embed-text-v1.5", "Hi"
    )
    assert code == 1
    assert one_line(err) == (
        "lmstudio-async: text-embedding-nomic-embed-text-v1.5 is an embedding model; chat needs "
        "an LLM (`lmstudio-async models` lists them)."
    )


async def test_server_error_lines_read_as_sentences() -> None:
    code, _, err = await run_installed("chat", "--simulate", "--model", "x/y", "Hi")
    assert code == 1
    assert one_line(err).startswith(
        'lmstudio-async: Cannot find a model with path "x/y". Available: qwen2.5-7b-instruct, '
    )
    assert err.rstrip().endswith(". `lmstudio-async models` lists the downloaded models.")


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--max-tokens", "0", "argument --max-tokens: expected a whole number of 1 or more"),
        ("--temperature", "inf", "argument --temperature: expected a finite number"),
        ("--temperature", "-1", "argument --temperature: expected a number of 0 or more"),
        ("--timeout", "0", "argument --timeout: expected a number greater than 0"),
    ],
)
async def test_out_of_range_options_are_usage_errors_naming_the_range(
    flag: str, value: str, expected: str
) -> None:
    code, _, err = await run_installed("chat", "--simulate", flag, value, "Hi")
    assert code == 2
    assert f"lmstudio-async chat: error: {expected}, got '{value}'" in err
    assert "False" not in err


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"),
        # Python 3.13+: the unavailable address is skipped and only this is left (bpo-30945).
        OSError("could not bind on any address out of [('192.0.2.1', 0)]"),
    ],
    ids=["errno", "python-3.13"],
)
def test_simulate_on_an_address_this_machine_lacks_says_so(error: OSError) -> None:
    # The bind error itself, not a real bind: tests never use an address other than loopback.
    args = argparse.Namespace(host="192.0.2.1", port=0)
    line = _cannot_listen(error, args)
    assert "192.0.2.1 is not an address of this machine: pass --host 127.0.0.1" in line
    assert "--port" not in line


async def test_simulate_on_a_busy_port_suggests_another_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = await run_installed("simulate", "--port", str(port))
    assert code == 1
    assert "pick another --port (0 = any free one)" in one_line(err)


async def test_help_lists_the_new_flags() -> None:
    code, out, _ = await run_installed("chat", "--help")
    assert code == 0
    for flag in ("--api-token TOKEN", "--timeout SECONDS", "-v, --verbose"):
        assert flag in out.decode()


async def test_after_a_dropped_connection_the_error_starts_a_line_of_its_own() -> None:
    async with Simulator() as sim:
        sim.script(
            "qwen2.5-7b-instruct",
            ScriptedReply(content="a b c d e f", faults=Faults(drop_after_fragments=2)),
        )
        # stdout and stderr into one pipe, as a terminal shows them.
        done = await anyio.run_process(
            [INSTALLED, "chat", "--host", f"{sim.host}:{sim.port}", "Hi"],
            env=cli_env(),
            stderr=subprocess.STDOUT,
            check=False,
        )
    shown = done.stdout.decode()
    assert done.returncode == 1
    half_reply, error_line = shown.splitlines()
    assert half_reply.strip() == "a b"
    assert error_line.startswith("lmstudio-async: the connection to LM Studio at ")

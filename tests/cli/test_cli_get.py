"""``lmstudio-async get``: search, download with a progress bar, Ctrl-C cancels the download."""

from __future__ import annotations

import re
import signal

import anyio
import pytest
from cli_helpers import CLI, cli_env, run_cli

from lmstudio_async.testing import Simulator

pytestmark = pytest.mark.anyio


def test_get_downloads_the_recommended_option_and_prints_the_model_key() -> None:
    done = run_cli(["get", "--simulate", "qwen3"])
    assert done.returncode == 0, done.stderr
    assert done.stdout == "qwen/qwen3-8b\n"
    lines = done.stderr.splitlines()
    assert lines[0] == "Downloading qwen/qwen3-8b Q4_K_M (5.0 GB)"
    # Bytes so far / in all and the current speed, as `lms get` shows them.
    assert re.search(r"100%  5\.0 GB / 5\.0 GB  [\d.]+ [KMG]?B/s$", lines[-2]), lines[-2]
    assert re.search(r" 10%  502\.8 MB / 5\.0 GB  [\d.]+ [KMG]?B/s$", lines[1]), lines[1]
    assert lines[-1] == "Finalizing download..."


async def test_get_of_a_downloaded_model_says_so_unless_forced() -> None:
    async with Simulator() as sim:
        get = [*CLI, "get", "--host", f"{sim.host}:{sim.port}", "qwen3"]
        first = await anyio.run_process(get, env=cli_env(), check=False)
        assert first.returncode == 0, first.stderr
        again = await anyio.run_process(get, env=cli_env(), check=False)
        assert again.returncode == 0, again.stderr
        assert again.stdout.decode() == "qwen/qwen3-8b\n"
        assert again.stderr.decode() == (
            "qwen/qwen3-8b Q4_K_M is already downloaded (--force downloads it again).\n"
        )
        assert len(sim.hub.downloads) == 1
        # Another quantization of it is a new file, and --force downloads a present one again.
        q8 = await anyio.run_process([*get, "--quantization", "Q8_0"], env=cli_env(), check=False)
        assert q8.returncode == 0, q8.stderr
        assert len(sim.hub.downloads) == 2
        forced = await anyio.run_process([*get, "--force"], env=cli_env(), check=False)
        assert forced.returncode == 0, forced.stderr
        assert b"Downloading qwen/qwen3-8b Q4_K_M" in forced.stderr
        assert len(sim.hub.downloads) == 3


async def test_get_a_chosen_quantization_then_load_it() -> None:
    async with Simulator() as sim:
        host = f"{sim.host}:{sim.port}"
        done = await anyio.run_process(
            [*CLI, "get", "--host", host, "--quantization", "q8_0", "llama 1b"],
            env=cli_env(),
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode() == "llama-3.2-1b-instruct\n"
        assert sim.hub.downloads[-1].download_identifier.endswith("@Q8_0")
        loaded = await anyio.run_process(
            [*CLI, "load", "--host", host, "llama-3.2-1b-instruct"], env=cli_env(), check=False
        )
        assert loaded.returncode == 0, loaded.stderr
        assert "llama-3.2-1b-instruct" in sim.loaded_identifiers()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nothing-matches-this"], "No model in LM Studio's catalogue matches"),
        (["--quantization", "Q2_K", "qwen3"], "has no Q2_K download; it comes as: Q4_K_M, Q8_0"),
    ],
    ids=["no-match", "no-such-quantization"],
)
def test_get_errors_are_one_line(args: list[str], message: str) -> None:
    done = run_cli(["get", "--simulate", *args])
    assert done.returncode == 1
    assert done.stdout == ""
    assert message in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr


async def test_ctrl_c_cancels_the_download_in_lm_studio() -> None:
    async with Simulator() as sim:
        sim.hub.download_seconds = 600.0
        async with await anyio.open_process(
            [*CLI, "get", "--host", f"{sim.host}:{sim.port}", "gemma"], env=cli_env()
        ) as process:
            with anyio.fail_after(30):
                await sim.wait_for(
                    lambda: bool(sim.hub.downloads) and sim.hub.downloads[-1].progress_sent > 0,
                    timeout=30,
                )
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(10):
                code = await process.wait()
        assert code == 130
        await sim.wait_for(lambda: sim.hub.downloads[-1].status == "cancelled", timeout=5)
        assert sim.hub.downloads[-1].cancel_received

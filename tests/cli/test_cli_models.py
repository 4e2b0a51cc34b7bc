"""``models``, ``load`` (progress bar), ``unload`` and ``simulate``, against a live simulator."""

from __future__ import annotations

import signal

import anyio
import pytest
from cli_helpers import CLI, cli_env, run_cli

from lmstudio_async.testing import Simulator

pytestmark = pytest.mark.anyio


async def cli(sim: Simulator, *args: str) -> tuple[int, str, str]:
    done = await anyio.run_process(
        [*CLI, *args, "--host", f"{sim.host}:{sim.port}"], env=cli_env(), check=False
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_models_lists_downloaded_models_and_where_they_are_loaded() -> None:
    async with Simulator() as sim:
        code, out, err = await cli(sim, "models")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["MODEL", "TYPE", "SIZE", "LOADED", "AS"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows["qwen2.5-7b-instruct"][0] == "llm"
    assert rows["qwen2.5-7b-instruct"][-1] == "qwen2.5-7b-instruct"
    assert rows["google/gemma-3-4b"][0] == "llm"
    assert rows["google/gemma-3-4b"][-1] == "GB"  # downloaded, not loaded
    assert rows["text-embedding-nomic-embed-text-v1.5"][0] == "embedding"


async def test_load_draws_a_progress_bar_and_prints_the_identifier() -> None:
    async with Simulator(load_duration=0.4) as sim:
        code, out, err = await cli(sim, "load", "google/gemma-3-4b")
        assert code == 0, err
        assert "google/gemma-3-4b" in sim.loaded_identifiers()
    assert out == "google/gemma-3-4b\n"
    bars = [line for line in err.splitlines() if line.startswith("Loading google/gemma-3-4b [")]
    assert len(bars) >= 3, err  # stderr is a pipe here: one line per 10 % step reached
    assert bars[-1].endswith("100%")
    assert "#" * 30 in bars[-1]


async def test_load_of_an_embedding_model_uses_the_embedding_namespace() -> None:
    async with Simulator(loaded=[]) as sim:
        code, _, err = await cli(sim, "load", "text-embedding-nomic-embed-text-v1.5")
        assert code == 0, err
        assert sim.loaded_identifiers() == ["text-embedding-nomic-embed-text-v1.5"]


async def test_unload_unloads_and_an_unknown_identifier_is_one_line_exit_1() -> None:
    async with Simulator() as sim:
        code, _, err = await cli(sim, "unload", "qwen2.5-7b-instruct")
        assert code == 0, err
        assert "qwen2.5-7b-instruct" not in sim.loaded_identifiers()

        code, _, err = await cli(sim, "unload", "no-such-model")
    assert code == 1
    assert len(err.splitlines()) == 1
    assert err.startswith("lmstudio-async: No model is loaded as 'no-such-model'.")


def test_models_with_simulate_needs_no_lm_studio() -> None:
    done = run_cli(["models", "--simulate"])
    assert done.returncode == 0, done.stderr
    assert "qwen2.5-7b-instruct" in done.stdout


async def test_simulate_serves_until_ctrl_c() -> None:
    async with await anyio.open_process([*CLI, "simulate", "--port", "0"], env=cli_env()) as server:
        assert server.stdout is not None
        with anyio.fail_after(10):
            banner = (await server.stdout.receive()).decode()
        assert banner.startswith("LM Studio simulator serving ws://127.0.0.1:")
        address = banner.split()[4].removeprefix("ws://")
        done = await anyio.run_process(
            [*CLI, "chat", "--host", address, "Hello"], env=cli_env(), check=False
        )
        assert done.stdout == b"You said: Hello\n"
        server.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            assert await server.wait() == 0

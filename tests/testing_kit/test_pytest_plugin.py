"""The pytest plugin, run the way a user's project runs it: a fresh directory, a subprocess.

The project under test has no conftest, no pytest configuration and no ``-p`` options, so
only what installing the package registers (the ``pytest11`` entry point) is in play.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_testing_snippet() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Testing your own app", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the README's testing section lost its python snippet"
    return match.group(1)


def _run_pytest(project: Path, *options: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-W",
            "error",
            "-p",
            "no:cacheprovider",
            # pytest-asyncio (installed here) warns at start, an error under -W error, without it.
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            *options,
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_readme_snippet_passes_in_a_fresh_project(tmp_path: Path) -> None:
    (tmp_path / "test_readme_snippet.py").write_text(_readme_testing_snippet())
    (tmp_path / "test_options.py").write_text(
        """
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import Simulator


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the marked test below runs the simulator itself, which needs asyncio


@pytest.mark.lmstudio_simulator(tokens_per_second=1000.0, loaded=["qwen3-4b-thinking"])
async def test_marker_configures_the_simulator(
    lmstudio_simulator: Simulator, lmstudio_client: lms.LMStudioClient
) -> None:
    assert lmstudio_simulator.loaded_identifiers() == ["qwen3-4b-thinking"]
    model = await lmstudio_client.llm.model("qwen3-4b-thinking")
    assert (await model.respond("hi")).stats.tokens_per_second == 1000.0


@pytest.mark.anyio
async def test_a_marked_test_without_the_fixtures() -> None:
    async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
        loaded = [m.identifier for m in await client.llm.list_loaded()]
        assert loaded == ["qwen2.5-7b-instruct"]
        assert sim.connection_count() == 1
"""
    )
    run = _run_pytest(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout, run.stdout


def test_a_plain_def_test_is_refused_saying_what_to_write_instead(tmp_path: Path) -> None:
    (tmp_path / "test_sync.py").write_text(
        """
from lmstudio_async.testing import Simulator


def test_sync(lmstudio_simulator: Simulator) -> None:
    pass
"""
    )
    run = _run_pytest(tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 error" in run.stdout, run.stdout
    assert "lmstudio_simulator needs an `async def` test" in run.stdout, run.stdout
    assert "await anyio.run_process" in run.stdout, run.stdout


def test_the_plugin_imports_neither_the_simulator_nor_aiohttp() -> None:
    # pytest imports the plugin at every start, in every project that installs the package.
    code = (
        "import sys, lmstudio_async.testing.pytest_plugin\n"
        "heavy = [m for m in ('aiohttp', 'lmstudio_async.testing._server') "
        "if m in sys.modules]\n"
        "print(heavy)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert run.stdout.strip() == "[]", run.stdout + run.stderr


PYTEST_ASYNCIO_TESTS = """
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import Simulator


@pytest.mark.asyncio
async def test_marked(lmstudio_simulator: Simulator, lmstudio_client: lms.LMStudioClient) -> None:
    model = await lmstudio_client.llm.model("qwen2.5-7b-instruct")
    assert (await model.respond("Hi")).content == "You said: Hi"
    assert lmstudio_simulator.predictions[-1].status == "finished"


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.lmstudio_simulator(loaded=["qwen3-4b-thinking"])
async def test_module_loop(lmstudio_client: lms.LMStudioClient) -> None:
    assert [m.identifier for m in await lmstudio_client.llm.list_loaded()] == ["qwen3-4b-thinking"]


@pytest.mark.asyncio
@pytest.mark.parametrize("text", ["a", "b"])
async def test_parametrized(lmstudio_client: lms.LMStudioClient, text: str) -> None:
    model = await lmstudio_client.llm.model("qwen2.5-7b-instruct")
    assert (await model.respond(text)).content == f"You said: {text}"
"""


def test_the_fixtures_run_in_pytest_asyncio_loops_in_strict_and_auto_mode(tmp_path: Path) -> None:
    # pytest-asyncio is the most common async plugin: a test it runs must get fixtures opened
    # in its own loop (they used to be opened in anyio's, and the client refused the test's).
    (tmp_path / "test_readme_snippet.py").write_text(_readme_testing_snippet())
    (tmp_path / "test_pytest_asyncio.py").write_text(PYTEST_ASYNCIO_TESTS)
    strict = _run_pytest(tmp_path)
    assert strict.returncode == 0, strict.stdout + strict.stderr
    assert "5 passed" in strict.stdout, strict.stdout  # the README's, run by anyio, among them
    auto = _run_pytest(tmp_path, "-o", "asyncio_mode=auto")
    assert auto.returncode == 0, auto.stdout + auto.stderr
    # In auto mode pytest-asyncio runs the README's test too, once, with no trio variant.
    assert "5 passed" in auto.stdout, auto.stdout
    assert "skipped" not in auto.stdout, auto.stdout

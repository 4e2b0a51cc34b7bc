"""The official TypeScript SDK, ``@lmstudio/sdk`` 2.0.0, runs its test script against the simulator.

npm installs the SDK once into pytest's cache directory (``.pytest_cache``; CI installs it on
its first run), or into a temporary directory when pytest runs without its cache. 2.0.0 asks
for ``@lmstudio/lms-isomorphic ^0.5.0``, which the registry does not have, so an npm
``overrides`` entry pins 0.4.6, the newest published (CHANGES-2.0.md).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from lmstudio_async.testing import ScriptedReply, ScriptedToolCall, Simulator

pytestmark = pytest.mark.anyio

SDK_VERSION = "2.0.0"
SCRIPT = Path(__file__).with_name("sdk2_against_simulator.mjs")
PACKAGE_JSON = {
    "private": True,
    "dependencies": {"@lmstudio/sdk": SDK_VERSION},
    "overrides": {"@lmstudio/lms-isomorphic": "0.4.6"},
}


@pytest.fixture(scope="module")
def sdk_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with ``@lmstudio/sdk`` 2.0.0 installed (installed on first use).

    Without pytest's cache (``-p no:cacheprovider``, as scripts/test-other-pythons runs) the
    install goes to a temporary directory instead, once per run.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(
            "node and npm are needed to run the official @lmstudio/sdk 2.0.0 against the "
            "simulator: install Node.js 18 or newer (https://nodejs.org), then re-run."
        )
    name = f"official-js-sdk-{SDK_VERSION}"
    cache = getattr(request.config, "cache", None)
    directory = Path(cache.mkdir(name)) if cache is not None else tmp_path_factory.mktemp(name)
    manifest = directory / "package.json"
    installed = directory / "node_modules" / "@lmstudio" / "sdk" / "package.json"
    wanted = json.dumps(PACKAGE_JSON, indent=2)
    if (
        not installed.is_file()
        or not manifest.is_file()
        or manifest.read_text() != wanted
        or json.loads(installed.read_text())["version"] != SDK_VERSION
    ):
        manifest.write_text(wanted)
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=50,
            check=False,
        )
        assert done.returncode == 0, f"npm install failed:\n{done.stdout}\n{done.stderr}"
    # Node resolves imports next to the importing file, so the script runs from there.
    shutil.copyfile(SCRIPT, directory / SCRIPT.name)
    return directory


async def test_the_official_sdk_2_runs_its_script_against_the_simulator(sdk_dir: Path) -> None:
    async with Simulator() as sim:
        sim.script(
            "qwen2.5-7b-instruct",
            ScriptedReply(tool_calls=[ScriptedToolCall(name="add", arguments={"a": 1, "b": 3})]),
            ScriptedReply(content="The sum is 4."),
        )
        with anyio.fail_after(45):
            done = await anyio.run_process(
                ["node", SCRIPT.name, sim.base_url], cwd=sdk_dir, check=False
            )
    lines = done.stdout.decode().splitlines()
    assert done.returncode == 0, f"{done.stdout.decode()}\n{done.stderr.decode()}"
    steps: dict[str, Any] = {}
    for line in lines:
        record = json.loads(line)
        steps[record.pop("step", "end")] = record
    assert steps.pop("end") == {"ok": True}

    seen = "I see 1 image: dot.png (image, 69 bytes)."
    assert steps["respondStreamedWithImage"] == {
        "streamed": f"{seen} You said: What is this?",
        "content": f"{seen} You said: What is this?",
        "stopReason": "eosFound",
    }
    assert steps["respondAwaitedWithImage"] == {"content": f"{seen} You said: And now?"}
    assert steps["complete"] == {"content": " Once upon a time"}
    assert steps["act"] == {"calls": [[1, 3]], "roles": ["assistant", "tool", "assistant"]}
    assert steps["embed"] == {"dimensions": 768}
    assert steps["listLoaded"] == {"identifiers": ["google/gemma-3-4b", "qwen2.5-7b-instruct"]}
    assert "qwen2.5-7b-instruct" in steps["listDownloadedModels"]["keys"]
    assert steps["estimateResourcesUsage"] == {
        "totalBytes": 4_683_073_952 + 8192 * 64 * 1024,
        "passesGuardrails": True,
    }
    assert steps["getInstanceProcessingState"] == {"status": "idle", "queued": 0}
    assert steps["systemGetInfo"] == {"isDaemon": False, "version": "0.3.30", "hasPid": True}
    assert steps["download"] == {
        "modelKey": "qwen/qwen3-8b",
        "progressReports": 10,
        "finalizing": True,
    }
    assert steps["lmLinkStatus"] == {
        "status": "online",
        "device": "sim-device-local",
        "peers": ["sim-device-gpu-box"],
    }
    assert steps["logProbs"]["tokens"] > 0
    assert steps["logProbs"]["candidates"] == 2
    assert steps["runtime"] == {
        "engines": ["llama.cpp-simulated"],
        "selected": "llama.cpp-simulated",
    }
    assert steps["pluginsAnswer"]["answered"] == "error"
    assert "Plugins are not available" in steps["pluginsAnswer"]["message"]

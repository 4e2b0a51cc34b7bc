"""The shipped surface of ``lmstudio_async.testing``."""

from __future__ import annotations

import anyio
import pytest

import lmstudio_async.testing as testing
from lmstudio_async.testing.__main__ import main


def test_all_is_sorted_and_complete() -> None:
    assert testing.__all__ == sorted(testing.__all__)
    functions = {"default_catalog", "default_completion", "default_reply", "serve"}
    classes = {n for n in dir(testing) if n[0].isupper()}
    assert classes | functions <= set(testing.__all__)


def test_the_module_is_the_simulate_command_with_all_its_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The README calls `python -m lmstudio_async.testing` the same as `lmstudio-async simulate`.
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    options = ("--port", "--script", "--tokens-per-second", "--quiet", "--no-context-limit")
    assert [option for option in (*options, "--catalog") if option not in out] == []


@pytest.mark.anyio
async def test_serve_runs_until_cancelled() -> None:
    with anyio.move_on_after(0.1) as scope:
        await testing.serve(port=0)
    assert scope.cancelled_caught


def test_scripted_tool_call_accepts_positional_name_and_arguments() -> None:
    call = testing.ScriptedToolCall("add", {"a": 1})
    assert (call.name, call.arguments, call.id, call.fail) == ("add", {"a": 1}, None, False)

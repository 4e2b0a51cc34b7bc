"""The ``lmstudio_async`` logger tells what the SDK did, and never what the user said."""

from __future__ import annotations

import logging

import pytest

import lmstudio_async as lms
from lmstudio_async.testing import Faults, ScriptedReply, Simulator

pytestmark = pytest.mark.anyio

TOKEN = "sk-lm-abcdefgh:0123456789abcdefghij"
PROMPT = "my confidential question"


def debug_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("lmstudio_async") and not r.name.startswith("lmstudio_async.testing")
    ]


def in_order(lines: list[str], *expected: str) -> bool:
    """Each expected fragment appears in some line, after the previous one's line."""
    position = 0
    for fragment in expected:
        while position < len(lines) and fragment not in lines[position]:
            position += 1
        if position == len(lines):
            return False
        position += 1
    return True


async def test_connect_auth_channels_cancel_drop_reconnect_and_close_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="lmstudio_async")
    story = " ".join(f"word{n}" for n in range(300))
    async with Simulator(api_token=TOKEN) as sim:
        sim.script(
            "qwen2.5-7b-instruct",
            ScriptedReply(content=story, tokens_per_second=100),
            ScriptedReply(content="a b c d", faults=Faults(drop_after_fragments=1)),
        )
        async with lms.LMStudioClient(sim.base_url, api_token=TOKEN) as client:
            model = await client.llm.model("qwen2.5-7b-instruct")
            prediction = model.respond(PROMPT)
            async for _ in prediction:
                await prediction.cancel()
            assert (await prediction.result()).stats.stop_reason == "userStopped"
            with pytest.raises(lms.LMStudioConnectionError):
                await model.respond(PROMPT)
            assert (await model.respond(PROMPT)).content == f"You said: {PROMPT}"
    lines = debug_lines(caplog)
    url = f"{sim.base_url}/llm"
    assert in_order(
        lines,
        f"llm: connecting to {url}",
        f"llm: authenticated to {url} with an API token",
        "(predict) opened",
        "(predict) cancel sent",
        "(predict) cancel acknowledged",
        "(predict) opened",
        f"llm: connection to {url} lost",
        f"llm: disconnected from {url}",
        f"llm: connecting to {url}",
        "llm: reconnected",
        "(predict) opened",
        "(predict) closed",
        f"llm: disconnected from {url}",
    ), "\n".join(lines)
    everything = "\n".join(lines)
    assert PROMPT not in everything
    assert "abcdefgh" not in everything  # no part of the token
    assert "0123456789abcdefghij" not in everything


async def test_a_refused_token_is_logged_with_the_server_reason_but_not_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="lmstudio_async")
    wrong = "sk-lm-abcdefgh:9999999999abcdefghij"
    async with (
        Simulator(api_token=TOKEN) as sim,
        lms.LMStudioClient(sim.base_url, api_token=wrong) as client,
    ):
        with pytest.raises(lms.LMStudioAuthenticationError):
            await client.system.version()
    lines = debug_lines(caplog)
    assert any("refused authentication" in line for line in lines), lines
    assert "9999999999" not in "\n".join(lines)


async def test_nothing_is_logged_below_warning_unless_asked(
    caplog: pytest.LogCaptureFixture, simulator: Simulator
) -> None:
    caplog.set_level(logging.INFO, logger="lmstudio_async")
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model("qwen2.5-7b-instruct")
        await model.respond("Hi")
    assert debug_lines(caplog) == []

"""The FastAPI example under a real uvicorn process, talking to a simulator in this process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from example_helpers import start_app

from lmstudio_async.testing import ScriptedReply, Simulator

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator() as simulator:
        yield simulator


async def test_chat_streams_fragments_as_server_sent_events(sim: Simulator) -> None:
    process, url = await start_app(sim)
    async with process:
        try:
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                response = await http.get("/chat", params={"prompt": "Hello there"})
        finally:
            process.terminate()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in response.text.split("\n\n") if e]
    fragments = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert "".join(fragments) == "You said: Hello there"
    assert events[-1].startswith("event: done\ndata: ")
    assert json.loads(events[-1].split("data: ", 1)[1])["stopReason"] == "eosFound"
    assert sim.predictions[-1].status == "finished"


async def test_the_root_serves_a_chat_page_that_uses_event_source(sim: Simulator) -> None:
    process, url = await start_app(sim)
    async with process:
        try:
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                response = await http.get("/")
        finally:
            process.terminate()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'new EventSource("/chat?prompt="' in response.text


async def test_a_client_disconnect_cancels_the_prediction_in_lm_studio(sim: Simulator) -> None:
    story = " ".join(f"word{n}" for n in range(1000))
    sim.script("qwen2.5-7b-instruct", ScriptedReply(content=story, tokens_per_second=50))
    process, url = await start_app(sim)
    async with process:
        try:
            async with (
                httpx.AsyncClient(base_url=url, timeout=10) as http,
                http.stream("GET", "/chat", params={"prompt": "Tell me a story"}) as response,
            ):
                async for chunk in response.aiter_text():
                    if "word3" in chunk:
                        break  # leaving the block closes the connection mid-stream
            await sim.wait_for(lambda: sim.predictions[-1].cancel_received, timeout=10)
        finally:
            process.terminate()
    record = sim.predictions[-1]
    assert record.status == "cancelled"
    assert record.fragments_sent < 1000

"""The official sync ``lmstudio.Client`` (its own background thread) against the simulator.

The simulator serves on the test's event loop while the blocking client runs in a worker
thread via ``anyio.to_thread.run_sync``.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import lmstudio
import pytest
from sim_flows import EMBEDDER, LLM, add

from lmstudio_async.testing import (
    Faults,
    ScriptedReply,
    ScriptedToolCall,
    Simulator,
    default_completion,
)

pytestmark = pytest.mark.anyio


def _sync_flow(api_host: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with lmstudio.Client(api_host) as client:
        out["loaded"] = [m.identifier for m in client.llm.list_loaded()]
        out["downloaded"] = {m.model_key for m in client.list_downloaded_models()}
        model = client.llm.model(LLM)
        stream = model.respond_stream("Hello from a thread")
        out["fragments"] = [f.content for f in stream]
        out["result"] = stream.result()
        out["tokens"] = model.count_tokens("one two three")
        out["act_rounds"] = model.act("Add one and two", [add]).rounds
        cancelled = model.respond_stream("stall please")
        for index, _ in enumerate(cancelled):
            if index == 1:
                cancelled.cancel()
        out["cancelled"] = cancelled.result().stats.stop_reason
        out["embedding"] = client.embedding.model(EMBEDDER).embed("hi")
        progress: list[float] = []
        handle = client.llm.load_new_instance(
            "google/gemma-3-4b", "sync-gemma", on_load_progress=progress.append
        )
        out["progress"] = progress
        # Gemma has no scripted replies queued, so it completes with the default model.
        out["completion"] = handle.complete("red green blue").content
        handle.unload()
    return out


async def test_sync_client_full_flow(simulator: Simulator) -> None:
    simulator.script(
        LLM,
        ScriptedReply(content="streamed reply from script"),
        ScriptedReply(tool_calls=[ScriptedToolCall(name="add", arguments={"a": 1, "b": 2})]),
        ScriptedReply(),  # the act() answer round uses an empty scripted reply
        ScriptedReply(content="x " * 40, faults=Faults(stall_after_fragments=2)),
    )
    host = f"{simulator.host}:{simulator.port}"
    out = await anyio.to_thread.run_sync(_sync_flow, host)
    assert out["loaded"] == [LLM]
    assert EMBEDDER in out["downloaded"]
    assert "".join(out["fragments"]) == "streamed reply from script"
    assert out["result"].stats.stop_reason == "eosFound"
    assert out["completion"] == default_completion("red green blue")
    assert out["tokens"] == 3
    assert out["act_rounds"] == 2
    assert out["cancelled"] == "userStopped"
    assert len(out["embedding"]) == 768
    assert out["progress"][-1] == 1.0
    assert "sync-gemma" not in simulator.loaded_identifiers()
    await simulator.wait_for(lambda: simulator.connection_count() == 0)
    assert simulator.open_channel_count() == 0

"""The official ``lmstudio`` 1.5.0 AsyncClient runs unmodified against the simulator."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import jsonschema
import lmstudio
import pytest
from sim_flows import BOOK_SCHEMA, EMBEDDER, LLM, add

from lmstudio_async.testing import (
    Faults,
    ScriptedReply,
    ScriptedToolCall,
    Simulator,
    default_completion,
    default_reply,
)

pytestmark = pytest.mark.anyio


def _client(sim: Simulator) -> lmstudio.AsyncClient:
    return lmstudio.AsyncClient(f"{sim.host}:{sim.port}")


def _history(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}


async def test_lists_loaded_and_downloaded_models(simulator: Simulator) -> None:
    async with _client(simulator) as client:
        llms = await client.llm.list_loaded()
        embedders = await client.embedding.list_loaded()
        downloaded = await client.list_downloaded_models()
    assert [m.identifier for m in llms] == [LLM]
    assert [m.identifier for m in embedders] == [EMBEDDER]
    keys = {m.model_key for m in downloaded}
    assert {LLM, "google/gemma-3-4b", "qwen3-4b-thinking", EMBEDDER} <= keys


async def test_respond_stream_yields_default_reply_and_stats(simulator: Simulator) -> None:
    async with _client(simulator) as client:
        model = await client.llm.model(LLM)
        stream = await model.respond_stream("Please echo these words")
        fragments = [fragment.content async for fragment in stream]
        result = stream.result()
    expected = default_reply(_history("Please echo these words"))
    assert "".join(fragments) == result.content == expected
    assert len(fragments) == len(expected.split())
    assert result.stats.predicted_tokens_count == len(fragments)
    assert result.stats.time_to_first_token_sec is not None
    assert result.stats.stop_reason == "eosFound"
    assert result.stats.prompt_tokens_count is not None
    assert result.model_info.display_name == "Qwen2.5 7B Instruct"
    assert simulator.predictions[-1].status == "finished"
    assert simulator.open_channel_count() == 0


async def test_complete_uses_the_default_completion(simulator: Simulator) -> None:
    async with _client(simulator) as client:
        model = await client.llm.model(LLM)
        result = await model.complete("alpha beta gamma")
    assert result.content == default_completion("alpha beta gamma")
    assert simulator.predictions[-1].raw_prompt == "alpha beta gamma"


async def test_max_tokens_config_limits_the_reply(simulator: Simulator) -> None:
    async with _client(simulator) as client:
        model = await client.llm.model(LLM)
        result = await model.respond("one two three four five", config={"maxTokens": 3})
    assert result.content == "You said: one "
    assert result.stats.stop_reason == "maxPredictedTokensReached"


async def test_cancel_mid_stream_reports_user_stopped(simulator: Simulator) -> None:
    simulator.script(LLM, ScriptedReply(content="w " * 50, faults=Faults(stall_after_fragments=3)))
    async with _client(simulator) as client:
        model = await client.llm.model(LLM)
        stream = await model.respond_stream("long please")
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == 3:
                await stream.cancel()
        result = stream.result()
    assert result.stats.stop_reason == "userStopped"
    record = simulator.predictions[-1]
    assert record.cancel_received
    assert record.status == "cancelled"
    assert record.fragments_sent == 3


async def test_structured_output_validates_against_the_schema(simulator: Simulator) -> None:
    async with _client(simulator) as client:
        model = await client.llm.model(LLM)
        result = await model.respond("Name a book", response_format=BOOK_SCHEMA)
    assert isinstance(result.parsed, dict)
    jsonschema.validate(result.parsed, BOOK_SCHEMA)


async def test_act_calls_the_tool_then_answers(simulator: Simulator) -> None:
    simulator.script(
        LLM,
        ScriptedReply(tool_calls=[ScriptedToolCall(name="add", arguments={"a": 1, "b": 2})]),
    )
    messages: list[Any] = []
    async with _client(simulator) as client:
        model = await client.llm.model(LLM)
        result = await model.act("Add one and two", [add], on_message=messages.append)
    assert result.rounds == 2
    final = simulator.predictions[-1]
    assert final.history is not None
    tool_message = final.history["messages"][-1]
    assert tool_message["role"] == "tool"
    assert tool_message["content"][0]["content"] == "3"
    assert final.content == "The tool returned: 3."
    assert str(messages[-1].content[0].text) == "The tool returned: 3."


async def test_reasoning_model_streams_think_segment(simulator: Simulator) -> None:
    async with _client(simulator) as client:
        model = await client.llm.model("qwen3-4b-thinking")
        stream = await model.respond_stream("Think first")
        fragments = [f async for f in stream]
    kinds = [f.reasoning_type for f in fragments]
    assert kinds[0] == "reasoningStartTag"
    assert "reasoningEndTag" in kinds
    assert fragments[0].content == "<think>"
    assert stream.result().content.endswith(default_reply(_history("Think first")))


async def test_embeddings_are_deterministic_unit_vectors(simulator: Simulator) -> None:
    async with _client(simulator) as client:
        model = await client.embedding.model(EMBEDDER)
        first = list(cast("Sequence[float]", await model.embed("hello world")))
        again = list(cast("Sequence[float]", await model.embed("hello world")))
        other = list(cast("Sequence[float]", await model.embed("something else")))
    assert len(first) == 768
    assert first == again
    assert first != other
    assert math.isclose(math.fsum(v * v for v in first), 1.0, rel_tol=1e-9)


async def test_tokenize_and_count_tokens_agree(simulator: Simulator) -> None:
    async with _client(simulator) as client:
        model = await client.llm.model(LLM)
        tokens = await model.tokenize("one two, three")
        count = await model.count_tokens("one two, three")
        context = await model.get_context_length()
    assert len(tokens) == count == 4
    assert context == 4096


async def test_load_with_progress_then_unload(simulator: Simulator) -> None:
    progress: list[float] = []
    async with _client(simulator) as client:
        handle = await client.llm.load_new_instance(
            "google/gemma-3-4b", "my-gemma", on_load_progress=progress.append
        )
        assert "my-gemma" in simulator.loaded_identifiers()
        result = await handle.respond("hi gemma")
        assert result.model_info.model_key == "google/gemma-3-4b"
        await handle.unload()
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    assert len(progress) >= 2
    assert "my-gemma" not in simulator.loaded_identifiers()


async def test_predicting_on_an_unloaded_model_raises_model_not_found(
    simulator: Simulator,
) -> None:
    async with _client(simulator) as client:
        handle = await client.llm.load_new_instance("google/gemma-3-4b", "short-lived")
        await handle.unload()
        with pytest.raises(lmstudio.LMStudioModelNotFoundError):
            await handle.respond("anyone there?")
    assert simulator.predictions[-1].status == "errored"


async def test_unknown_preset_raises_preset_not_found(simulator: Simulator) -> None:
    async with _client(simulator) as client:
        model = await client.llm.model(LLM)
        with pytest.raises(lmstudio.LMStudioPresetNotFoundError):
            await model.respond("hi", preset="no-such-preset")

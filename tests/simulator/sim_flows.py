"""A broad official-SDK flow, shared by the faithfulness and schema-validation tests."""

from __future__ import annotations

from typing import Any

import lmstudio

from lmstudio_async.testing import ScriptedReply, ScriptedToolCall, Simulator

LLM = "qwen2.5-7b-instruct"
EMBEDDER = "text-embedding-nomic-embed-text-v1.5"

BOOK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "year": {"type": "integer"},
        "ok": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "kind": {"enum": ["novel", "poem"]},
    },
    "required": ["title", "year", "ok", "tags", "kind"],
}


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def broad_async_flow(sim: Simulator) -> None:
    """Touch every endpoint the official async client uses (mirrors official-client-frames)."""
    async with lmstudio.AsyncClient(f"{sim.host}:{sim.port}") as client:
        await client.llm.list_loaded()
        await client.embedding.list_loaded()
        await client.list_downloaded_models()
        model = await client.llm.model(LLM)
        await model.get_info()
        await model.get_load_config()
        await model.get_context_length()
        await model.respond("Hello simulator", config={"maxTokens": 3})
        await model.complete("alpha beta")
        await model.respond("Reply with JSON", response_format=BOOK_SCHEMA)
        sim.script(
            LLM,
            ScriptedReply(tool_calls=[ScriptedToolCall(name="add", arguments={"a": 1, "b": 2})]),
        )
        await model.act("Add one and two", [add])
        sim.script(LLM, ScriptedReply(content="a b c d e f", tokens_per_second=200.0))
        stream = await model.respond_stream("cancel me")
        async for _ in stream:
            await stream.cancel()
        await model.tokenize("one two")
        await model.count_tokens("one two")
        thinker = await client.llm.model("qwen3-4b-thinking")
        await thinker.respond("Think first")
        embedder = await client.embedding.model(EMBEDDER)
        await embedder.embed("hello world")
        await embedder.tokenize("one two")
        await embedder.count_tokens("one two")
        loaded = await client.llm.load_new_instance("google/gemma-3-4b", "flow-gemma")
        await loaded.respond("loaded instance works")
        await loaded.unload()

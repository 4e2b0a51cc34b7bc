"""What a model handle does: info, load config, tokens, prompt template, staleness."""

from __future__ import annotations

import msgspec
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import Simulator

pytestmark = pytest.mark.anyio

LLM_KEY = "qwen2.5-7b-instruct"
EMBEDDING_KEY = "text-embedding-nomic-embed-text-v1.5"


def _rpc_parameters(sim: Simulator, namespace: str, endpoint: str) -> list[dict[str, object]]:
    return [
        f.get("parameter", {})
        for f in sim.frames_received(namespace)
        if f.get("type") == "rpcCall" and f.get("endpoint") == endpoint
    ]


async def test_get_info_is_fresh_and_addresses_the_instance(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(LLM_KEY)
        assert model.info.last_used_time is None
        await model.count_tokens("touch it")  # marks the instance as used
        info = await model.get_info()
        assert isinstance(info, lms.LLMInstanceInfo)
        assert info.identifier == LLM_KEY
        assert info.last_used_time is not None
        assert model.info.last_used_time is not None
    [parameter] = _rpc_parameters(simulator, "llm", "getModelInfo")
    assert parameter == {
        "specifier": {
            "type": "instanceReference",
            "instanceReference": info.instance_reference,
        },
        "throwIfNotFound": True,
    }


async def test_tokenize_and_count_tokens(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        llm, embedder = await client.llm.model(LLM_KEY), await client.embedding.model()
        # Embedding models wrap the text in start and end markers, which countTokens skips.
        for model, markers in ((llm, 0), (embedder, 2)):
            tokens = await model.tokenize("Hello brave new world")
            assert tokens
            assert all(isinstance(t, int) for t in tokens)
            assert await model.count_tokens("Hello brave new world") == len(tokens) - markers
            texts = ["one", "two words", "and three words", "x" * 50]
            batch = await model.tokenize(texts)
            assert batch == [await model.tokenize(t) for t in texts]
            assert await model.tokenize(("a", "b")) == [
                await model.tokenize("a"),
                await model.tokenize("b"),
            ]
    calls = _rpc_parameters(simulator, "llm", "tokenize")
    assert any(c["inputString"] == "and three words" for c in calls)
    assert all(c["specifier"]["type"] == "instanceReference" for c in calls)  # type: ignore[index]


async def test_tokenize_bad_input(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(LLM_KEY)
        with pytest.raises(lms.LMStudioUsageError, match="empty list"):
            await model.tokenize([])
        with pytest.raises(lms.LMStudioUsageError, match="item 1"):
            await model.tokenize(["ok", 3])  # type: ignore[list-item]
        with pytest.raises(lms.LMStudioUsageError, match="string"):
            await model.tokenize(7)  # type: ignore[call-overload]
        with pytest.raises(lms.LMStudioUsageError, match="max_concurrency"):
            await model.tokenize(["a"], max_concurrency=0)
        with pytest.raises(lms.LMStudioUsageError, match="count_tokens"):
            await model.count_tokens(["a"])  # type: ignore[arg-type]
    assert _rpc_parameters(simulator, "llm", "tokenize") == []


async def test_apply_prompt_template(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(LLM_KEY)
        chat = lms.Chat.from_history(
            [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Hi there"},
            ]
        )
        formatted = await model.apply_prompt_template(chat)
        assert "You are terse." in formatted
        assert "Hi there" in formatted
        assert formatted.index("You are terse.") < formatted.index("Hi there")
        assert "Hello" in await model.apply_prompt_template("Hello", config={"temperature": 0.1})
    [first, second] = _rpc_parameters(simulator, "llm", "applyPromptTemplate")
    assert first["opts"] == {}
    assert first["history"] == msgspec.to_builtins(chat.to_wire())
    layers = second["predictionConfigStack"]["layers"]  # type: ignore[index]
    assert {"key": "llm.prediction.temperature", "value": 0.1} in layers[0]["config"]["fields"]


async def test_get_context_length_of_default_instances(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        llm = await client.llm.model()
        embedding = await client.embedding.model()
        assert await llm.get_context_length() == 4096
        assert await embedding.get_context_length() == 2048
        assert (await llm.get_load_config()).context_length == 4096
        assert (await embedding.get_load_config()).context_length == 2048


async def test_old_handle_never_uses_a_newer_model_with_the_same_identifier(
    simulator: Simulator,
) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        old = await client.llm.load("google/gemma-3-4b", identifier="worker")
        await client.llm.unload("worker")
        new = await client.llm.load("qwen3-4b-thinking", identifier="worker")
        assert new.identifier == old.identifier == "worker"

        with pytest.raises(lms.LMStudioModelNotFoundError):
            await old.get_info()
        with pytest.raises(lms.LMStudioModelNotFoundError):
            await old.count_tokens("hi")
        with pytest.raises(lms.LMStudioModelNotFoundError):
            await old.tokenize(["a", "b"])
        with pytest.raises(lms.LMStudioModelNotFoundError):
            await old.get_context_length()
        with pytest.raises(lms.LMStudioModelNotFoundError):
            await old.apply_prompt_template("hi")
        with pytest.raises(lms.LMStudioModelNotFoundError):
            await old.respond("hi")
        # Unloading through the stale handle must not unload the newer model.
        with pytest.raises(lms.LMStudioModelNotFoundError):
            await old.unload()
        assert "worker" in simulator.loaded_identifiers()
        assert (await new.get_info()).model_key == "qwen3-4b-thinking"
        # Looking the identifier up again gives the new instance.
        again = await client.llm.model("worker")
        assert again.info.instance_reference == new.info.instance_reference


async def test_stale_embedding_handle(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        old = await client.embedding.load(EMBEDDING_KEY, identifier="vectors")
        await old.unload()
        await client.embedding.load(EMBEDDING_KEY, identifier="vectors")
        with pytest.raises(lms.LMStudioModelNotFoundError):
            await old.embed("text")
        with pytest.raises(lms.LMStudioModelNotFoundError):
            await old.embed(["a", "b", "c"])

"""The public types a user sees, checked by ``mypy --strict`` and run as a smoke test."""

from __future__ import annotations

import pytest
from typing_extensions import assert_type

import lmstudio_async as lms
from lmstudio_async.testing import Simulator

pytestmark = pytest.mark.anyio


async def test_the_core_flow_is_precisely_typed(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        assert_type(client, lms.LMStudioClient)
        model = await client.llm.model("qwen2.5-7b-instruct")
        assert_type(model, lms.LLM)
        assert_type(model.info, lms.LLMInstanceInfo)
        assert_type(model.identifier, str)

        prediction = model.respond(lms.Chat.from_history("Hi"))
        async for fragment in prediction:
            assert_type(fragment, lms.PredictionFragment)
            assert_type(fragment.content, str)
            assert_type(fragment.reasoning_type, lms.types.ReasoningType)
        result = await prediction.result()
        assert_type(result, lms.PredictionResult[str])
        assert_type(result.stats, lms.PredictionStats)
        assert_type(result.stats.predicted_tokens_count, int | None)
        assert_type(result.model_info, lms.LLMInstanceInfo)
        assert result.stats.stop_reason == "eosFound"

        completion = await model.complete("Once")
        assert_type(completion.content, str)

        embedder = await client.embedding.model()
        assert_type(embedder, lms.EmbeddingModel)
        assert_type(await embedder.embed("text"), list[float])
        downloaded = await client.system.list_downloaded_models()
        assert_type(downloaded, list[lms.types.ModelInfo])


def test_exported_names_are_complete_and_sorted() -> None:
    public = {
        name
        for name, value in vars(lms).items()
        if not name.startswith("_") and not isinstance(value, type(lms))
    }
    assert set(lms.__all__) >= public, sorted(public - set(lms.__all__))
    assert list(lms.__all__) == sorted(lms.__all__, key=lambda n: (n.startswith("__"), n))
    for name in lms.__all__:
        assert hasattr(lms, name), name

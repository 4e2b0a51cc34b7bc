"""Static types of structured results, checked by ``mypy --strict`` (and run as a smoke test)."""

from __future__ import annotations

from typing import Any

import msgspec
import pydantic
import pytest
from typing_extensions import assert_type

import lmstudio_async as lms
from lmstudio_async.testing import ScriptedReply, Simulator

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"


class Answer(msgspec.Struct):
    value: int


class AnswerModel(pydantic.BaseModel):
    value: int


async def test_parsed_has_the_users_type(simulator: Simulator) -> None:
    for _ in range(5):  # plain, struct, pydantic, complete, schema
        simulator.script(MODEL, ScriptedReply(content='{"value": 1}'))
    simulator.script(MODEL, ScriptedReply(content="yes"))
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)

        plain = model.respond("Hi")
        assert_type(plain, lms.PredictionStream[str])
        plain_result = await plain
        assert_type(plain_result, lms.PredictionResult[str])
        assert_type(plain_result.parsed, str)

        structured = model.respond("Hi", response_format=Answer)
        assert_type(structured, lms.PredictionStream[Answer])
        answer = await structured.result()
        assert_type(answer.parsed, Answer)
        assert answer.parsed.value == 1

        from_pydantic = await model.respond("Hi", response_format=AnswerModel)
        assert_type(from_pydantic.parsed, AnswerModel)
        assert from_pydantic.parsed.value == 1

        completion = await model.complete("Hi", response_format=Answer)
        assert_type(completion.parsed, Answer)

        schema: dict[str, Any] = {"type": "object", "properties": {"value": {"type": "integer"}}}
        raw = await model.respond("Hi", response_format=schema)
        assert_type(raw.parsed, Any)
        assert raw.parsed == {"value": 1}

        grammar = await model.respond("Hi", response_format=lms.GBNFGrammar('root ::= "yes"'))
        assert_type(grammar.parsed, str)

        acted = await model.act("Hi", [])
        assert_type(acted, lms.ActResult)
        assert_type(acted.result, lms.PredictionResult[str])

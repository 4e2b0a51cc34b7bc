"""``response_format=``: typed results from msgspec / pydantic / schema dicts / GBNF."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pydantic
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import ScriptedReply, Simulator

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"


class Address(msgspec.Struct):
    city: str
    zip_code: str


class Person(msgspec.Struct):
    name: str
    age: int
    address: Address
    tags: list[str] = []


class PersonModel(pydantic.BaseModel):
    name: str
    age: int


def _structured_field(sim: Simulator) -> Any:
    layers = sim.predictions[-1].config_stack["layers"]
    fields = {f["key"]: f["value"] for layer in layers for f in layer["config"]["fields"]}
    return fields["llm.prediction.structured"]


async def test_msgspec_struct_round_trip(simulator: Simulator) -> None:
    reply = {"name": "Ada", "age": 36, "address": {"city": "London", "zip_code": "N1"}}
    simulator.script(MODEL, ScriptedReply(content=json.dumps(reply)))
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        result = await model.respond("Who?", response_format=Person)
    assert result.parsed == Person(name="Ada", age=36, address=Address("London", "N1"))
    assert result.content == json.dumps(reply)
    sent = _structured_field(simulator)
    assert sent["type"] == "json"
    schema = sent["jsonSchema"]
    # LM Studio gets an object schema at the top, with the nested struct inlined.
    assert schema["type"] == "object"
    assert "$ref" not in json.dumps(schema)
    assert "$defs" not in schema
    assert schema["properties"]["address"]["properties"]["city"] == {"type": "string"}
    assert schema["required"] == ["name", "age", "address"]


async def test_simulator_default_reply_matches_schema(simulator: Simulator) -> None:
    # The unscripted simulator answers with an instance of the requested schema.
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        result = await model.respond("Who?", response_format=Person)
    assert isinstance(result.parsed, Person)
    assert isinstance(result.parsed.address, Address)


async def test_invalid_json_reply_raises_with_raw_content(simulator: Simulator) -> None:
    simulator.script(MODEL, ScriptedReply(content='{"name": "Ada", "age": '))
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        prediction = model.respond("Who?", response_format=Person)
        fragments = [f.content async for f in prediction]  # iteration itself ends normally
        with pytest.raises(lms.LMStudioStructuredOutputError) as info:
            await prediction.result()
        assert client._open_channel_count() == 0
    assert info.value.content == '{"name": "Ada", "age": '
    assert info.value.content == "".join(fragments)
    assert info.value.stop_reason == "eosFound"
    assert "Person" in str(info.value)


async def test_reply_with_wrong_types_fails_validation(simulator: Simulator) -> None:
    bad = {"name": "Ada", "age": "old", "address": {"city": "x", "zip_code": "y"}}
    simulator.script(MODEL, ScriptedReply(content=json.dumps(bad)))
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        with pytest.raises(
            lms.LMStudioStructuredOutputError,
            match=r"not a valid Person: Expected `int`, got `str` - at `\$\.age`",
        ):
            await model.respond("Who?", response_format=Person)


async def test_pydantic_model(simulator: Simulator) -> None:
    simulator.script(MODEL, ScriptedReply(content='{"name": "Bo", "age": 5}'))
    simulator.script(MODEL, ScriptedReply(content='{"name": "Bo"}'))
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        result = await model.respond("Who?", response_format=PersonModel)
        assert result.parsed == PersonModel(name="Bo", age=5)
        assert _structured_field(simulator)["jsonSchema"]["required"] == ["name", "age"]
        with pytest.raises(lms.LMStudioStructuredOutputError, match="pydantic"):
            await model.respond("Who?", response_format=PersonModel)


async def test_schema_dict_gives_decoded_json(simulator: Simulator) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    simulator.script(MODEL, ScriptedReply(content='{"answer": 42}'))
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        result = await model.complete("The answer is", response_format=schema)
    assert result.parsed == {"answer": 42}
    assert _structured_field(simulator) == {"type": "json", "jsonSchema": schema}


async def test_gbnf_grammar(simulator: Simulator) -> None:
    simulator.script(MODEL, ScriptedReply(content="yes"))
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        grammar = lms.GBNFGrammar('root ::= "yes" | "no"')
        result = await model.respond("Well?", response_format=grammar)
    assert result.parsed == "yes"
    assert _structured_field(simulator) == {
        "type": "gbnf",
        "gbnfGrammar": 'root ::= "yes" | "no"',
    }


async def test_plain_prediction_parsed_is_content(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        result = await model.respond("Hi")
    assert result.parsed == result.content == "You said: Hi"


class Tree(msgspec.Struct):
    value: int
    children: list[Tree] = []


async def test_bad_formats_fail_before_sending(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        with pytest.raises(lms.LMStudioUsageError, match="response_format=object"):
            model.respond("Hi", response_format=object)
        with pytest.raises(lms.LMStudioUsageError, match="Unsupported response_format"):
            model.respond("Hi", response_format=42)  # type: ignore[call-overload]
        with pytest.raises(lms.LMStudioUsageError, match="once"):
            model.respond(
                "Hi",
                response_format=Person,
                config={"structured": {"type": "json", "json_schema": {}}},
            )
    assert simulator.predictions == []


async def test_recursive_struct_keeps_defs(simulator: Simulator) -> None:
    simulator.script(MODEL, ScriptedReply(content='{"value": 1, "children": [{"value": 2}]}'))
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        result = await model.respond("Tree?", response_format=Tree)
    assert result.parsed == Tree(1, [Tree(2)])
    schema = _structured_field(simulator)["jsonSchema"]
    assert schema["type"] == "object"
    assert schema["properties"]["children"]["items"] == {"$ref": "#/$defs/Tree"}
    assert "Tree" in schema["$defs"]

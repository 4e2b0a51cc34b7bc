"""The simulator answers as LM Studio does where the official lmstudio suite checks it.

One test per kind of behaviour (model-name resolution, "not found" codes, duplicate
identifiers, structured completions and grammars, embedding tokenization, just-in-time
eviction, upload file types), so the behaviour holds without running the official suite.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import lmstudio
import pytest
from sim_helpers import llm_query, predict_parameter, raw_client

from lmstudio_async.testing import ModelSpec, PredictionRecord, Simulator, default_catalog
from lmstudio_async.testing._state import ServerState

pytestmark = pytest.mark.anyio

LLM = "qwen2.5-7b-instruct"
EMBEDDER = "text-embedding-nomic-embed-text-v1.5"
LLAMA_PATH = "hugging-quants/Llama-3.2-1B-Instruct-Q8_0-GGUF/llama-3.2-1b-instruct-q8_0.gguf"
NO_STACK: dict[str, Any] = {"layers": []}


def _catalog() -> list[ModelSpec]:
    llama = ModelSpec(
        model_key="llama-3.2-1b-instruct", publisher="hugging-quants", path=LLAMA_PATH
    )
    small = ModelSpec(model_key="smollm2-135m-instruct", params_string="135M")
    return [*default_catalog(), llama, small]


def _simulator() -> Simulator:
    return Simulator(catalog=_catalog(), loaded=[LLM, EMBEDDER, "llama-3.2-1b-instruct"])


# ---- model-name resolution -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "llama-3.2-1b-instruct",  # the identifier
        "LLAMA-3.2-1B-Instruct",  # ... in another case
        "hugging-quants/llama-3.2-1b-instruct",  # a lower-case prefix of the path
        "hugging-quants/Llama-3.2-1B-Instruct-Q8_0-GGUF",  # publisher/repo
        LLAMA_PATH,  # the whole path
    ],
)
async def test_every_endpoint_resolves_a_model_name_the_same_way(name: str) -> None:
    async with _simulator() as sim, raw_client(sim) as client:
        info = await client.rpc(
            "getModelInfo", {"specifier": llm_query(name), "throwIfNotFound": True}
        )
        assert info["result"]["identifier"] == "llama-3.2-1b-instruct"
        count = await client.rpc(
            "countTokens", {"specifier": llm_query(name), "inputString": "a b"}
        )
        assert count["result"] == {"tokenCount": 2}
        packets, end = await client.channel_packets(
            await client.create_channel("predict", predict_parameter("hi", model=name))
        )
        assert end["type"] == "channelClose"
        assert packets[-1]["modelInfo"]["identifier"] == "llama-3.2-1b-instruct"
        get_or_load = {"identifier": name, "loadConfigStack": NO_STACK}
        packets, _ = await client.channel_packets(
            await client.create_channel("getOrLoad", get_or_load)
        )
        assert [p["type"] for p in packets] == ["alreadyLoaded"]
        assert packets[0]["info"]["identifier"] == "llama-3.2-1b-instruct"
        # No second instance was loaded along the way.
        assert sim.loaded_identifiers() == [LLM, EMBEDDER, "llama-3.2-1b-instruct"]


async def test_loading_by_path_prefix_names_the_instance_after_the_key() -> None:
    async with _simulator() as sim, raw_client(sim) as client:
        load = {"modelKey": "hugging-quants/llama-3.2-1b-instruct", "loadConfigStack": NO_STACK}
        packets, end = await client.channel_packets(await client.create_channel("loadModel", load))
        assert end["type"] == "channelClose"
        assert packets[0]["info"]["modelKey"] == "llama-3.2-1b-instruct"
        assert packets[-1]["info"]["identifier"] == "llama-3.2-1b-instruct:2"
        reply = await client.rpc("unloadModel", {"identifier": "LLAMA-3.2-1B-INSTRUCT:2"})
        assert reply["type"] == "rpcResult"
    assert sim.loaded_identifiers() == [LLM, EMBEDDER, "llama-3.2-1b-instruct"]


async def test_an_ambiguous_load_takes_the_best_match_and_lists_the_others() -> None:
    # Two quantizations of one repository: its publisher/repo names both equally well.
    repo = "bartowski/Phi-4-GGUF"
    q4 = ModelSpec(model_key="phi-4", path=f"{repo}/phi-4-Q4_K_M.gguf")
    q8 = ModelSpec(model_key="phi-4-q8", path=f"{repo}/phi-4-Q8_0.gguf")
    async with Simulator(catalog=[q4, q8], loaded=[]) as sim, raw_client(sim) as client:
        load = {"modelKey": repo.upper(), "loadConfigStack": NO_STACK}
        packets, _ = await client.channel_packets(await client.create_channel("loadModel", load))
    assert packets[0]["type"] == "resolved"
    assert packets[0]["info"]["modelKey"] == "phi-4"  # the first of equal matches
    assert packets[0]["ambiguous"] == ["phi-4-q8"]
    assert packets[-1]["info"]["identifier"] == "phi-4"


async def test_an_exact_key_is_not_ambiguous_with_a_weaker_match() -> None:
    # "bartowski/phi-4" is one model's key and, by repository name, another's.
    by_repo = ModelSpec(model_key="phi-4", path="bartowski/Phi-4-GGUF/phi-4-Q4_K_M.gguf")
    by_key = ModelSpec(model_key="bartowski/phi-4", path="bartowski/phi-4/phi-4.gguf")
    async with Simulator(catalog=[by_repo, by_key], loaded=[]) as sim, raw_client(sim) as client:
        load = {"modelKey": "bartowski/phi-4", "loadConfigStack": NO_STACK}
        packets, _ = await client.channel_packets(await client.create_channel("loadModel", load))
    assert packets[0]["info"]["modelKey"] == "bartowski/phi-4"
    assert "ambiguous" not in packets[0]


async def test_official_client_gets_a_loaded_model_by_publisher_prefix_without_reloading() -> None:
    async with _simulator() as sim:
        async with lmstudio.AsyncClient(f"{sim.host}:{sim.port}") as client:
            model = await client.llm.model("hugging-quants/llama-3.2-1b-instruct")
            embedder = await client.embedding.model("nomic-ai/nomic-embed-text-v1.5")
            reply = await model.respond("Hello")
        assert (model.identifier, embedder.identifier) == ("llama-3.2-1b-instruct", EMBEDDER)
        assert reply.content == "You said: Hello"
        assert sim.loaded_identifiers() == [LLM, EMBEDDER, "llama-3.2-1b-instruct"]


async def test_the_openai_endpoint_resolves_names_the_same_way() -> None:
    async with _simulator() as sim, aiohttp.ClientSession() as session:
        url = f"{sim.http_url}/v1/chat/completions"
        messages = [{"role": "user", "content": "x"}]
        body = {"model": "Hugging-Quants/LLAMA-3.2-1B-instruct", "messages": messages}
        async with session.post(url, json=body) as response:
            reply = await response.json()
        # A character prefix is no name, on this endpoint as on the others.
        body = {"model": "Hugging-Quants/LLAMA-3.2", "messages": messages}
        async with session.post(url, json=body) as response:
            assert response.status == 404
    assert reply["model"] == "llama-3.2-1b-instruct"
    assert reply["choices"][0]["message"]["content"] == "You said: x"


# Real LM Studio keys: the shorter is a character prefix of the longer, not a name of it.
QWEN = ModelSpec(model_key="qwen/qwen3-4b", path="qwen/qwen3-4b/qwen3-4b-Q4_K_M.gguf")
QWEN_THINKING = ModelSpec(
    model_key="qwen/qwen3-4b-thinking-2507",
    path="qwen/qwen3-4b-thinking-2507/qwen3-4b-thinking-2507-Q4_K_M.gguf",
)


async def test_a_key_that_prefixes_a_loaded_models_key_loads_its_own_model() -> None:
    catalog = [QWEN, QWEN_THINKING]
    async with Simulator(catalog=catalog, loaded=[QWEN_THINKING.model_key]) as sim:
        async with lmstudio.AsyncClient(f"{sim.host}:{sim.port}") as client:
            model = await client.llm.model("qwen/qwen3-4b")
            info = await model.get_info()
        assert info.model_key == "qwen/qwen3-4b"
        assert sim.loaded_identifiers() == ["qwen/qwen3-4b-thinking-2507", "qwen/qwen3-4b"]


async def test_among_loaded_instances_the_best_match_answers() -> None:
    catalog = [QWEN, QWEN_THINKING]
    async with Simulator(catalog=catalog, loaded=[QWEN_THINKING.model_key]) as sim:
        async with lmstudio.AsyncClient(f"{sim.host}:{sim.port}") as client:
            await client.llm.load_new_instance("qwen/qwen3-4b", "my-qwen")
            model = await client.llm.model("qwen/qwen3-4b")
            result = await model.respond("hi")
        assert result.model_info.model_key == "qwen/qwen3-4b"
        assert sim.loaded_identifiers() == ["qwen/qwen3-4b-thinking-2507", "my-qwen"]


@pytest.mark.parametrize("name", ["L", "q", "lmstudio-community", "qwen2.5", "hugging-quants/l"])
async def test_a_name_that_is_only_a_character_prefix_is_not_found(name: str) -> None:
    async with _simulator() as sim, raw_client(sim) as client:
        info = await client.rpc(
            "getModelInfo", {"specifier": llm_query(name), "throwIfNotFound": True}
        )
        assert info["error"]["displayData"]["code"] == "generic.noModelMatchingQuery"
        get_or_load = {"identifier": name, "loadConfigStack": NO_STACK}
        _, end = await client.channel_packets(await client.create_channel("getOrLoad", get_or_load))
        assert end["type"] == "channelError"
        assert end["error"]["displayData"]["code"] == "generic.pathNotFound"
        unload = await client.rpc("unloadModel", {"identifier": name})
        assert unload["error"]["displayData"]["code"] == "generic.noModelMatchingQuery"
    assert sim.loaded_identifiers() == [LLM, EMBEDDER, "llama-3.2-1b-instruct"]


async def test_unload_takes_an_instance_identifier_not_a_model_name() -> None:
    async with _simulator() as sim, raw_client(sim) as client:
        reply = await client.rpc(
            "unloadModel", {"identifier": "hugging-quants/llama-3.2-1b-instruct"}
        )
        assert reply["error"]["displayData"]["code"] == "generic.noModelMatchingQuery"
        assert sim.loaded_identifiers() == [LLM, EMBEDDER, "llama-3.2-1b-instruct"]
        reply = await client.rpc("unloadModel", {"identifier": "LLAMA-3.2-1B-instruct"})
        assert reply["type"] == "rpcResult"
    assert sim.loaded_identifiers() == [LLM, EMBEDDER]


# ---- "not found" codes -------------------------------------------------------------------------

_LOOKUPS: list[tuple[str, str, dict[str, Any]]] = [
    ("llm", "countTokens", {"specifier": llm_query("gone"), "inputString": "x"}),
    ("llm", "tokenize", {"specifier": llm_query("gone"), "inputString": "x"}),
    ("llm", "getLoadConfig", {"specifier": llm_query("gone")}),
    ("llm", "getModelInfo", {"specifier": llm_query("gone"), "throwIfNotFound": True}),
    (
        "llm",
        "applyPromptTemplate",
        {
            "specifier": llm_query("gone"),
            "history": {"messages": []},
            "predictionConfigStack": NO_STACK,
            "opts": {},
        },
    ),
    ("llm", "unloadModel", {"identifier": "gone"}),
    ("embedding", "embedString", {"modelSpecifier": llm_query("gone"), "inputString": "x"}),
    ("embedding", "unloadModel", {"identifier": "gone"}),
]


@pytest.mark.parametrize(("namespace", "endpoint", "parameter"), _LOOKUPS)
async def test_every_lookup_of_an_unloaded_model_reports_no_model_matching_query(
    simulator: Simulator, namespace: str, endpoint: str, parameter: dict[str, Any]
) -> None:
    async with raw_client(simulator, namespace) as client:
        reply = await client.rpc(endpoint, parameter)
    assert reply["type"] == "rpcError"
    data = reply["error"]["displayData"]
    assert data["code"] == "generic.noModelMatchingQuery"
    assert data["query"] == {"identifier": "gone"}
    assert data["totalLoadedModels"] == 1


async def test_official_client_raises_model_not_found_for_an_unloaded_model(
    simulator: Simulator,
) -> None:
    async with lmstudio.AsyncClient(f"{simulator.host}:{simulator.port}") as client:
        handle = client.llm._create_handle("No such model")
        with pytest.raises(lmstudio.LMStudioModelNotFoundError):
            await handle.count_tokens("Some text")
        with pytest.raises(lmstudio.LMStudioModelNotFoundError):
            await client.llm.unload("No such model")
        with pytest.raises(lmstudio.LMStudioModelNotFoundError):
            await handle.complete("Some text")


# ---- duplicate identifiers ---------------------------------------------------------------------


async def test_a_taken_identifier_is_refused_in_the_apps_words(simulator: Simulator) -> None:
    async with lmstudio.AsyncClient(f"{simulator.host}:{simulator.port}") as client:
        with pytest.raises(lmstudio.LMStudioServerError, match=r"Model load error.*already exists"):
            await client.llm.load_new_instance("google/gemma-3-4b", LLM)
        second = await client.llm.load_new_instance(LLM)
    assert second.identifier == f"{LLM}:2"


# ---- structured output and grammars ------------------------------------------------------------

GRAMMAR = r"""
root ::= "{\"answer\":" string ",\"ok\":" ("true" | "false") "}"
string ::= "\"" [^"\\]* "\""
"""


def _completion(raw: str, structured: dict[str, Any]) -> dict[str, Any]:
    field = {"key": "llm.prediction.structured", "value": structured}
    return {
        "modelSpecifier": llm_query(LLM),
        "rawPrompt": raw,
        "predictionConfigStack": {
            "layers": [{"layerName": "apiOverride", "config": {"fields": [field]}}]
        },
    }


async def _content(client: Any, endpoint: str, parameter: dict[str, Any]) -> str:
    packets, end = await client.channel_packets(await client.create_channel(endpoint, parameter))
    assert end["type"] == "channelClose", end
    return "".join(p["fragment"]["content"] for p in packets if p["type"] == "fragment")


async def test_completions_and_chat_follow_a_json_schema_or_a_grammar(simulator: Simulator) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    json_mode = {"type": "json", "jsonSchema": schema}
    gbnf_mode = {"type": "gbnf", "gbnfGrammar": GRAMMAR}
    field = {"key": "llm.prediction.structured", "value": gbnf_mode}
    async with raw_client(simulator) as client:
        assert json.loads(
            await _content(client, "completeRawText", _completion("Hi", json_mode))
        ) == {"a": 0}
        grammar_reply = await _content(client, "completeRawText", _completion("Hi", gbnf_mode))
        chat_reply = await _content(client, "predict", predict_parameter("Hi", fields=[field]))
    assert json.loads(grammar_reply) == json.loads(chat_reply) == {"answer": "", "ok": True}


async def test_official_client_completion_honours_a_gbnf_grammar(simulator: Simulator) -> None:
    config = {"structured": {"type": "gbnf", "gbnfGrammar": GRAMMAR}}
    async with lmstudio.AsyncClient(f"{simulator.host}:{simulator.port}") as client:
        model = await client.llm.model(LLM)
        result = await model.complete("Hello", config=config)  # type: ignore[arg-type]
    assert result.parsed == {"answer": "", "ok": True}


async def test_a_grammar_that_does_not_parse_fails_the_prediction(simulator: Simulator) -> None:
    broken = {"type": "gbnf", "gbnfGrammar": 'root ::= "a" missing'}
    async with raw_client(simulator) as client:
        channel = await client.create_channel("completeRawText", _completion("Hi", broken))
        _, end = await client.channel_packets(channel)
    assert end["type"] == "channelError"
    assert end["error"]["title"] == "Failed to parse the GBNF grammar"
    assert "undefined rule 'missing'" in end["error"]["cause"]


# ---- embedding tokenization --------------------------------------------------------------------


async def test_embedding_tokenize_adds_start_and_end_markers(simulator: Simulator) -> None:
    text = "Hello, world!"
    async with raw_client(simulator, "embedding") as embedding, raw_client(simulator) as llm:
        query = {"specifier": llm_query(EMBEDDER), "inputString": text}
        tokens = (await embedding.rpc("tokenize", query))["result"]["tokens"]
        count = (await embedding.rpc("countTokens", query))["result"]["tokenCount"]
        query = {"specifier": llm_query(LLM), "inputString": text}
        llm_tokens = (await llm.rpc("tokenize", query))["result"]["tokens"]
    assert len(tokens) == count + 2
    assert tokens[1:-1] == llm_tokens  # the same text tokens, wrapped in the markers
    assert tokens[0] != tokens[-1]


# ---- just-in-time eviction ---------------------------------------------------------------------


async def test_a_jit_load_evicts_the_previous_jit_model_and_says_so() -> None:
    async with _simulator() as sim:
        async with raw_client(sim, "embedding") as embedding, raw_client(sim) as llm:
            assert (await embedding.rpc("unloadModel", {"identifier": EMBEDDER}))["type"] == (
                "rpcResult"
            )
            jit = {"identifier": EMBEDDER, "loadTtlMs": 300_000, "loadConfigStack": NO_STACK}
            packets, _ = await embedding.channel_packets(
                await embedding.create_channel("getOrLoad", jit)
            )
            assert packets[0]["type"] == "startLoading"
            assert packets[-1]["info"]["ttlMs"] == 300_000
            jit = {"identifier": "smollm2-135m-instruct", "loadConfigStack": NO_STACK}
            packets, _ = await llm.channel_packets(await llm.create_channel("getOrLoad", jit))
        kinds = [p["type"] for p in packets]
        assert kinds[:2] == ["unloadingOtherJITModel", "startLoading"]
        assert packets[0]["info"]["identifier"] == EMBEDDER
        assert packets[0]["info"]["type"] == "embedding"
        # Models loaded explicitly stay; only the earlier just-in-time model went.
        assert sim.loaded_identifiers() == [LLM, "llama-3.2-1b-instruct", "smollm2-135m-instruct"]


async def test_an_instance_idle_past_its_ttl_is_unloaded() -> None:
    async with _simulator() as sim, raw_client(sim) as client:
        for key, ttl in (("google/gemma-3-4b", 1), ("qwen3-4b-thinking", 3_600_000)):
            load = {"modelKey": key, "ttlMs": ttl, "loadConfigStack": NO_STACK}
            await client.channel_packets(await client.create_channel("loadModel", load))
        # Idle for more than its 1 ms TTL, it goes; the one-hour TTL model stays.
        await sim.wait_for(lambda: "google/gemma-3-4b" not in sim.loaded_identifiers())
        assert "qwen3-4b-thinking" in sim.loaded_identifiers()
        query = {"specifier": llm_query("google/gemma-3-4b"), "throwIfNotFound": True}
        reply = await client.rpc("getModelInfo", query)
        assert reply["error"]["displayData"]["code"] == "generic.noModelMatchingQuery"


def test_a_generating_instance_is_busy_however_short_its_ttl() -> None:
    state = ServerState(catalog=_catalog(), loaded=[], load_duration=0, version="0", build=0)
    spec = state.find_spec("google/gemma-3-4b")
    assert spec is not None
    instance = state.add_instance(spec, "gemma", ttl_ms=1)
    instance.idle_since -= 10.0  # idle for ten seconds
    record = PredictionRecord(
        connection_id=1,
        channel_id=1,
        endpoint="predict",
        model_identifier="gemma",
        history=None,
        raw_prompt="x",
        config_stack={"layers": []},
    )
    state.predictions.append(record)
    state.prediction_started(record)
    assert [i.identifier for i in state.loaded()] == ["gemma"]
    state.prediction_ended(record)
    assert state.loaded() == []  # idle again, and long past its TTL


# ---- upload file types -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "file_type"),
    [
        ("notes.txt", "text/plain"),
        ("NOTES.TXT", "text/plain"),
        ("cat.png", "image"),
        ("photo.JPEG", "image"),
        ("paper.pdf", "application/pdf"),
        ("letter.docx", "application/word"),
        ("data.csv", "text/other"),
    ],
)
async def test_uploads_get_the_apps_file_type(
    simulator: Simulator, name: str, file_type: str
) -> None:
    content = base64.b64encode(b"hello").decode()
    async with raw_client(simulator, "files") as client:
        reply = await client.rpc("uploadFileBase64", {"name": name, "contentBase64": content})
    assert reply["result"]["fileType"] == file_type
    assert reply["result"]["sizeBytes"] == 5

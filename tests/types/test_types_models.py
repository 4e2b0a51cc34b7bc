"""Decoding model info, fragments and stats from the wire, old and new servers alike."""

from __future__ import annotations

import json

import msgspec
import pytest

from lmstudio_async.types import (
    EmbeddingModelInstanceInfo,
    LLMInfo,
    LLMInstanceInfo,
    LMLinkStatus,
    ModelInfo,
    ModelInstanceInfo,
    PredictionFragment,
    PredictionStats,
    PromptProcessingDetails,
    Quantization,
)

# modelInfo of the success packet in PROTOCOL.md §3.4 (HEAD-complete).
HEAD_MODEL_INFO = {
    "type": "llm",
    "modelKey": "qwen2.5-7b-instruct",
    "format": "gguf",
    "displayName": "Qwen2.5 7B Instruct",
    "publisher": "lmstudio-community",
    "path": "lmstudio-community/Qwen2.5-7B-Instruct-GGUF/Qwen2.5-7B-Instruct-Q4_K_M.gguf",
    "sizeBytes": 4683073952,
    "indexedModelIdentifier": (
        "lmstudio-community/Qwen2.5-7B-Instruct-GGUF/Qwen2.5-7B-Instruct-Q4_K_M.gguf"
    ),
    "deviceIdentifier": None,
    "paramsString": "7B",
    "architecture": "qwen2",
    "quantization": {"name": "Q4_K_M", "bits": 4},
    "identifier": "qwen2.5-7b-instruct",
    "instanceReference": "inst-5f0c2a",
    "ttlMs": 3600000,
    "lastUsedTime": None,
    "vision": False,
    "trainedForToolUse": True,
    "maxContextLength": 32768,
    "contextLength": 4096,
}

NEWER_FIELDS = (
    "publisher",
    "indexedModelIdentifier",
    "deviceIdentifier",
    "quantization",
    "ttlMs",
    "lastUsedTime",
)


def test_head_model_info_decodes() -> None:
    info = msgspec.json.decode(json.dumps(HEAD_MODEL_INFO), type=LLMInstanceInfo)
    assert info.model_key == "qwen2.5-7b-instruct"
    assert info.identifier == "qwen2.5-7b-instruct"
    assert info.instance_reference == "inst-5f0c2a"
    assert info.quantization == Quantization(name="Q4_K_M", bits=4)
    assert info.ttl_ms == 3600000
    assert info.last_used_time is None
    assert info.device_identifier is None
    assert info.trained_for_tool_use is True
    assert (info.max_context_length, info.context_length) == (32768, 4096)
    assert info.size_bytes == 4683073952


def test_release_54_model_info_without_newer_fields_decodes() -> None:
    old = {k: v for k, v in HEAD_MODEL_INFO.items() if k not in NEWER_FIELDS}
    info = msgspec.json.decode(json.dumps(old), type=LLMInstanceInfo)
    assert info.publisher is None
    assert info.quantization is None
    assert info.ttl_ms is None


def test_variants_and_device_of_a_2_0_model_info_decode() -> None:
    newer = {
        **HEAD_MODEL_INFO,
        "deviceIdentifier": "gpu-box",
        "variants": ["qwen2.5-7b-instruct@q4_k_m", "qwen2.5-7b-instruct@q8_0"],
        "selectedVariant": "qwen2.5-7b-instruct@q4_k_m",
        "format": "yuzu",  # a format newer than this client's list stays a plain string
    }
    info = msgspec.json.decode(json.dumps(newer), type=LLMInstanceInfo)
    assert info.device_identifier == "gpu-box"
    assert info.variants == ["qwen2.5-7b-instruct@q4_k_m", "qwen2.5-7b-instruct@q8_0"]
    assert info.selected_variant == "qwen2.5-7b-instruct@q4_k_m"
    assert info.format == "yuzu"


def test_unknown_fields_from_newer_servers_are_ignored() -> None:
    newer = {**HEAD_MODEL_INFO, "someFutureField": {"x": 1}}
    assert msgspec.json.decode(json.dumps(newer), type=LLMInstanceInfo).identifier


def test_tagged_unions_pick_the_kind() -> None:
    embedding = {
        "type": "embedding",
        "modelKey": "nomic-embed",
        "format": "gguf",
        "displayName": "Nomic Embed",
        "path": "nomic/embed.gguf",
        "sizeBytes": 1000,
        "maxContextLength": 2048,
        "identifier": "nomic-embed",
        "instanceReference": "inst-1",
        "contextLength": 2048,
    }
    decoder = msgspec.json.Decoder(list[ModelInstanceInfo])
    llm, emb = decoder.decode(json.dumps([HEAD_MODEL_INFO, embedding]))
    assert isinstance(llm, LLMInstanceInfo)
    assert isinstance(emb, EmbeddingModelInstanceInfo)
    downloaded = msgspec.json.decode(json.dumps(HEAD_MODEL_INFO), type=ModelInfo)
    assert type(downloaded) is LLMInfo


def test_model_info_encodes_with_camel_keys_and_type_tag() -> None:
    info = msgspec.json.decode(json.dumps(HEAD_MODEL_INFO), type=LLMInstanceInfo)
    encoded = json.loads(msgspec.json.encode(info))
    assert encoded["type"] == "llm"
    assert encoded["instanceReference"] == "inst-5f0c2a"


def test_fragment_decodes_from_the_wire_object() -> None:
    raw = (
        b'{"content":"1","tokensCount":1,"containsDrafted":false,'
        b'"reasoningType":"none","isStructural":false}'
    )
    assert msgspec.json.decode(raw, type=PredictionFragment) == PredictionFragment(
        content="1", tokens_count=1
    )


def test_fragment_without_is_structural_and_with_newer_tokens() -> None:
    raw = (
        b'{"content":"<think>","tokensCount":1,"containsDrafted":true,'
        b'"reasoningType":"reasoningStartTag","tokens":[{"text":"<think>","id":5}]}'
    )
    fragment = msgspec.json.decode(raw, type=PredictionFragment)
    assert fragment.is_structural is False
    assert fragment.contains_drafted is True
    assert fragment.reasoning_type == "reasoningStartTag"


def test_fragment_encodes_all_five_fields_and_no_null_tokens() -> None:
    encoded = json.loads(msgspec.json.encode(PredictionFragment(content="a")))
    # LM Studio sends these five always, and `tokens` only when the prediction asked for
    # log_probs: never as null.
    assert encoded == {
        "content": "a",
        "tokensCount": 0,
        "containsDrafted": False,
        "reasoningType": "none",
        "isStructural": False,
    }


WIRE_FRAGMENTS = [
    {
        "content": "1",
        "tokensCount": 1,
        "containsDrafted": False,
        "reasoningType": "none",
        "isStructural": False,
    },
    {
        "content": " hi!",
        "tokensCount": 2,
        "containsDrafted": True,
        "reasoningType": "reasoning",
        "isStructural": False,
        "tokens": [
            {
                "text": " hi",
                "id": 7,
                "logProb": -0.25,
                "candidates": [
                    {"text": " hi", "id": 7, "logProb": -0.25},
                    {"text": " yo", "id": 9, "logProb": -1.5},
                ],
            },
            {"text": "!", "id": 3},  # a token without log-probabilities
        ],
    },
]


@pytest.mark.parametrize("wire", WIRE_FRAGMENTS)
def test_a_fragment_forwarded_as_json_is_what_lm_studio_sent(wire: dict[str, object]) -> None:
    fragment = msgspec.json.decode(json.dumps(wire), type=PredictionFragment)
    encoded = msgspec.json.encode(fragment)
    assert json.loads(encoded) == wire  # no field added (no null), none lost
    assert msgspec.json.decode(encoded, type=PredictionFragment) == fragment


def test_lm_link_status_encodes_without_the_fields_lm_studio_left_out() -> None:
    wire = {
        "status": "online",
        "issues": [],
        "peers": [{"deviceIdentifier": "d2", "deviceName": "Desk", "status": "connected"}],
        "deviceIdentifier": None,  # sent as null until LM Link has registered this machine
        "deviceName": "Laptop",
    }
    status = msgspec.json.decode(json.dumps(wire), type=LMLinkStatus)
    encoded = msgspec.json.encode(status)
    assert json.loads(encoded) == wire
    assert msgspec.json.decode(encoded, type=LMLinkStatus) == status


def test_fragment_tokens_decode_with_and_without_log_probs() -> None:
    raw = (
        b'{"content":" hi","tokensCount":1,"containsDrafted":false,"reasoningType":"none",'
        b'"isStructural":false,"tokens":[{"text":" hi","id":7,"logProb":-0.25,'
        b'"candidates":[{"text":" hi","id":7,"logProb":-0.25},{"text":" yo","id":9,'
        b'"logProb":-1.5}]},{"text":"!","id":3}]}'
    )
    fragment = msgspec.json.decode(raw, type=PredictionFragment)
    assert fragment.tokens is not None
    first, second = fragment.tokens
    assert (first.text, first.id, first.log_prob) == (" hi", 7, -0.25)
    assert [(c.text, c.log_prob) for c in first.candidates or []] == [(" hi", -0.25), (" yo", -1.5)]
    assert (second.log_prob, second.candidates) == (None, None)


def test_stats_decode_with_only_the_stop_reason() -> None:
    stats = msgspec.json.decode(b'{"stopReason":"userStopped"}', type=PredictionStats)
    assert stats.stop_reason == "userStopped"
    assert stats.total_time_sec is None


def test_stats_of_the_protocol_example() -> None:
    raw = (
        b'{"stopReason":"eosFound","tokensPerSecond":52.3,"numGpuLayers":-1,'
        b'"timeToFirstTokenSec":0.087,"totalTimeSec":0.131,"promptTokensCount":31,'
        b'"predictedTokensCount":3,"totalTokensCount":34}'
    )
    stats = msgspec.json.decode(raw, type=PredictionStats)
    assert stats.predicted_tokens_count == 3
    assert stats.tokens_per_second == pytest.approx(52.3)
    assert json.loads(msgspec.json.encode(stats)) == json.loads(raw)


def test_stats_refuse_an_unknown_stop_reason() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"stopReason":"bored"}', type=PredictionStats)


def test_prompt_processing_details() -> None:
    raw = (
        b'{"cachedTokenCount":0,"totalPromptTokenCount":31,'
        b'"processedPromptTokenCount":31,"unprocessedPromptTokenCount":0}'
    )
    details = msgspec.json.decode(raw, type=PromptProcessingDetails)
    assert details.processed_prompt_token_count == 31

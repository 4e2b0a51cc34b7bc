"""Typed configs: translation to KV keys (PROTOCOL.md §3.3, §5.6) and validation."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from lmstudio_async._errors import LMStudioConfigError
from lmstudio_async.types import (
    EmbeddingLoadConfig,
    GPUSetting,
    KVConfig,
    KVField,
    LLMLoadConfig,
    PredictionConfig,
    ReasoningParsing,
    StructuredOutput,
)


def on(value: Any) -> dict[str, Any]:
    return {"checked": True, "value": value}


def off(placeholder: Any) -> dict[str, Any]:
    return {"checked": False, "value": placeholder}


P = "llm.prediction."
SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
TOOLS = {
    "type": "toolArray",
    "tools": [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}],
}
TEMPLATE = {"type": "jinja", "jinjaPromptTemplate": {"template": "{{ x }}"}, "stopStrings": []}

# (snake_case option, TypeScript name, user value, KV key, KV value) -- the §3.3 table.
PREDICTION_ROWS: list[tuple[str, str, Any, str, Any]] = [
    ("temperature", "temperature", 0.2, P + "temperature", 0.2),
    ("max_tokens", "maxTokens", 64, P + "maxPredictedTokens", on(64)),
    ("top_p_sampling", "topPSampling", 0.9, P + "topPSampling", on(0.9)),
    ("top_k_sampling", "topKSampling", 40, P + "topKSampling", 40),
    ("min_p_sampling", "minPSampling", 0.05, P + "minPSampling", on(0.05)),
    ("repeat_penalty", "repeatPenalty", 1.2, P + "repeatPenalty", on(1.2)),
    ("presence_penalty", "presencePenalty", 0.5, P + "llama.presencePenalty", on(0.5)),
    ("frequency_penalty", "frequencyPenalty", 0.5, P + "llama.frequencyPenalty", on(0.5)),
    ("xtc_probability", "xtcProbability", 0.5, P + "llama.xtcProbability", on(0.5)),
    ("xtc_threshold", "xtcThreshold", 0.1, P + "llama.xtcThreshold", on(0.1)),
    ("stop_strings", "stopStrings", ["\n\n"], P + "stopStrings", ["\n\n"]),
    (
        "tool_call_stop_strings",
        "toolCallStopStrings",
        ["</t>"],
        P + "toolCallStopStrings",
        ["</t>"],
    ),
    (
        "context_overflow_policy",
        "contextOverflowPolicy",
        "stopAtLimit",
        P + "contextOverflowPolicy",
        "stopAtLimit",
    ),
    (
        "structured",
        "structured",
        StructuredOutput(type="json", json_schema=SCHEMA),
        P + "structured",
        {"type": "json", "jsonSchema": SCHEMA},
    ),
    ("raw_tools", "rawTools", TOOLS, P + "tools", TOOLS),
    (
        "tool_choice",
        "toolChoice",
        "required",
        P + "toolChoice",
        {"type": "generic", "mode": "required"},
    ),
    ("tool_naming", "toolNaming", "snakeCase", P + "toolNaming", "snakeCase"),
    (
        "reasoning_parsing",
        "reasoningParsing",
        ReasoningParsing(enabled=True, start_string="<r>", end_string="</r>"),
        P + "reasoning.parsing",
        {"enabled": True, "startString": "<r>", "endString": "</r>"},
    ),
    ("enable_thinking", "enableThinking", False, P + "reasoning.enableThinking", False),
    ("reasoning_budget", "reasoningBudget", 256, P + "reasoning.budgetTokens", on(256)),
    ("log_probs", "logProbs", 5, P + "logProbs", on(5)),
    ("cpu_threads", "cpuThreads", 8, P + "llama.cpuThreads", 8),
    ("prompt_template", "promptTemplate", TEMPLATE, P + "promptTemplate", TEMPLATE),
    ("draft_model", "draftModel", "qwen-0.5b", P + "speculativeDecoding.draftModel", "qwen-0.5b"),
    (
        "speculative_decoding_num_draft_tokens_exact",
        "speculativeDecodingNumDraftTokensExact",
        3,
        P + "speculativeDecoding.numDraftTokensExact",
        3,
    ),
    (
        "speculative_decoding_min_draft_length_to_consider",
        "speculativeDecodingMinDraftLengthToConsider",
        2,
        P + "speculativeDecoding.minDraftLengthToConsider",
        2,
    ),
    (
        "speculative_decoding_min_continue_drafting_probability",
        "speculativeDecodingMinContinueDraftingProbability",
        0.6,
        P + "speculativeDecoding.minContinueDraftingProbability",
        0.6,
    ),
    (
        "user_max_image_dimension_pixels",
        "userMaxImageDimensionPixels",
        512,
        P + "vision.userMaxImageDimensionPixels",
        on(512),
    ),
    (
        "ignore_model_preferred_max_image_dimension",
        "ignoreModelPreferredMaxImageDimension",
        True,
        P + "vision.ignoreModelPreferredMaxImageDimension",
        True,
    ),
    ("seed", "seed", 42, P + "seed", on(42)),
    ("system_prompt", "systemPrompt", "Be terse.", P + "systemPrompt", "Be terse."),
]


def test_every_prediction_option_is_covered() -> None:
    fields = {f.name for f in msgspec.structs.fields(PredictionConfig)} - {"raw"}
    assert {row[0] for row in PREDICTION_ROWS} == fields


@pytest.mark.parametrize(("snake", "camel", "value", "key", "wire"), PREDICTION_ROWS)
def test_prediction_option_translates_to_its_kv_key(
    snake: str, camel: str, value: Any, key: str, wire: Any
) -> None:
    by_snake = PredictionConfig.from_value({snake: value})
    by_camel = PredictionConfig.from_value({camel: value})
    assert by_snake == by_camel
    assert by_snake.to_kv_fields() == [KVField(key=key, value=wire)]
    # ...and back: the server's effective config exposes the same typed value.
    assert PredictionConfig.from_kv(KVConfig(fields=[KVField(key=key, value=wire)])) == by_snake


@pytest.mark.parametrize(
    ("option", "key", "placeholder"),
    [
        ("max_tokens", "maxPredictedTokens", 1000),
        ("reasoning_budget", "reasoning.budgetTokens", 1024),
        ("top_p_sampling", "topPSampling", 0.95),
        ("min_p_sampling", "minPSampling", 0.05),
        ("repeat_penalty", "repeatPenalty", 1.1),
        ("user_max_image_dimension_pixels", "vision.userMaxImageDimensionPixels", 1024),
    ],
)
def test_false_unchecks_a_checkbox_option(option: str, key: str, placeholder: Any) -> None:
    config = PredictionConfig.from_value({option: False})
    assert config.to_kv_fields() == [KVField(key=P + key, value=off(placeholder))]
    assert PredictionConfig.from_kv(KVConfig(fields=config.to_kv_fields())) == config


def test_protocol_example_layer() -> None:
    config = PredictionConfig(
        temperature=0.2, max_tokens=64, top_p_sampling=0.9, top_k_sampling=40, stop_strings=["\n\n"]
    )
    expected: list[dict[str, Any]] = sorted(
        [
            {"key": "llm.prediction.temperature", "value": 0.2},
            {"key": "llm.prediction.maxPredictedTokens", "value": {"checked": True, "value": 64}},
            {"key": "llm.prediction.topPSampling", "value": {"checked": True, "value": 0.9}},
            {"key": "llm.prediction.topKSampling", "value": 40},
            {"key": "llm.prediction.stopStrings", "value": ["\n\n"]},
        ],
        key=lambda f: str(f["key"]),
    )
    fields = sorted(msgspec.to_builtins(config.to_kv_fields()), key=lambda f: str(f["key"]))
    assert fields == expected


def test_raw_config_is_merged_under_typed_options() -> None:
    raw = {P + "temperature": 1.5, P + "llama.mirostatSampling": {"version": 2}}
    config = PredictionConfig.from_value({"temperature": 0.1, "raw": raw})
    assert config.to_kv_fields() == [
        KVField(key=P + "temperature", value=0.1),
        KVField(key=P + "llama.mirostatSampling", value={"version": 2}),
    ]
    wire_raw = {"fields": [{"key": P + "seed", "value": on(3)}]}
    assert PredictionConfig(raw=wire_raw).to_kv_fields() == [KVField(key=P + "seed", value=on(3))]


def test_from_kv_ignores_unknown_keys_and_values_it_cannot_represent() -> None:
    server = KVConfig(
        fields=[
            KVField(key=P + "temperature", value=0.7),
            KVField(key=P + "somethingNew", value=1),
            KVField(key=P + "topKSampling", value="weird"),
        ]
    )
    assert PredictionConfig.from_kv(server) == PredictionConfig(temperature=0.7)


def test_structured_accepts_a_bare_schema_and_pydantic_models() -> None:
    import pydantic

    class Answer(pydantic.BaseModel):
        answer: int

    assert PredictionConfig(structured=SCHEMA).structured == StructuredOutput(  # type: ignore[arg-type]
        type="json", json_schema=SCHEMA
    )
    from_model = PredictionConfig.from_value({"response_format": Answer}).structured
    assert from_model is not None
    assert from_model.json_schema == Answer.model_json_schema()
    gbnf = PredictionConfig.from_value(
        {"structured": {"type": "gbnf", "gbnf_grammar": "root ::= x"}}
    )
    assert gbnf.to_kv_fields()[0].value == {"type": "gbnf", "gbnfGrammar": "root ::= x"}


def test_unknown_option_names_the_key_and_suggests_the_closest() -> None:
    with pytest.raises(LMStudioConfigError) as info:
        PredictionConfig.from_value({"temprature": 0.5})
    message = str(info.value)
    assert "'temprature'" in message
    assert "Did you mean 'temperature'?" in message
    assert "max_tokens" in message
    assert "top_p_sampling" in message
    with pytest.raises(LMStudioConfigError, match="Did you mean 'max_tokens'"):
        PredictionConfig.from_value({"maxToken": 5})


def test_an_option_given_twice_is_refused() -> None:
    with pytest.raises(LMStudioConfigError, match="given twice"):
        PredictionConfig.from_value({"max_tokens": 5, "maxTokens": 6})


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"temperature": -1}, r"'temperature': -1 \(expected a number >= 0\)"),
        ({"temperature": "hot"}, r"'temperature': 'hot' \(expected a number >= 0\)"),
        ({"top_p_sampling": 1.5}, r"'top_p_sampling': 1.5 \(expected a number from 0 to 1"),
        ({"max_tokens": 0}, r"'max_tokens': 0 \(expected an integer >= 1, or False"),
        ({"max_tokens": True}, r"'max_tokens': True"),
        ({"max_tokens": 2.5}, r"'max_tokens': 2.5"),
        ({"top_k_sampling": 501}, r"'top_k_sampling': 501 \(expected an integer from -1 to 500\)"),
        ({"top_k_sampling": -2}, r"from -1 to 500"),
        (
            {"context_overflow_policy": "drop"},
            r"'context_overflow_policy': 'drop' \(expected one of 'stopAtLimit', 'truncateMiddle', "
            r"'rollingWindow'\)",
        ),
        ({"stop_strings": "\n"}, r"'stop_strings': '\\n' \(expected a list of str\)"),
        ({"tool_choice": "always"}, r"'tool_choice'.*'none', 'auto', 'required'"),
        ({"enable_thinking": "yes"}, r"'enable_thinking': 'yes' \(expected True or False\)"),
        ({"structured": {"type": "json"}}, r"type 'json' needs a json_schema"),
        ({"raw_tools": {"type": "tools"}}, r"'raw_tools'.*'none', 'toolArray'"),
        ({"reasoning_parsing": {"enabled": "x"}}, r"'reasoning_parsing'"),
        ({"raw": 5}, r"'raw': 5"),
    ],
)
def test_invalid_values_name_key_value_and_range(values: dict[str, Any], expected: str) -> None:
    with pytest.raises(LMStudioConfigError, match=expected):
        PredictionConfig.from_value(values)


def test_direct_construction_validates_too() -> None:
    with pytest.raises(LMStudioConfigError, match="temperature"):
        PredictionConfig(temperature=-0.5)


def test_from_value_passes_configs_through_and_refuses_other_types() -> None:
    config = PredictionConfig(temperature=1.0)
    assert PredictionConfig.from_value(config) is config
    assert PredictionConfig.from_value(None) == PredictionConfig()
    with pytest.raises(LMStudioConfigError, match="not list"):
        PredictionConfig.from_value([])  # type: ignore[arg-type]


def test_repr_shows_only_what_is_set() -> None:
    assert repr(PredictionConfig(temperature=0.5)) == "PredictionConfig(temperature=0.5)"


# ---- load configs -----------------------------------------------------------------------

L, LL = "llm.load.", "llm.load.llama."

LLM_LOAD_ROWS: list[tuple[str, str, Any, str, Any]] = [
    ("context_length", "contextLength", 4096, L + "contextLength", 4096),
    ("gpu_strict_vram_cap", "gpuStrictVramCap", True, "load.gpuStrictVramCap", True),
    ("offload_kv_cache_to_gpu", "offloadKVCacheToGpu", True, L + "offloadKVCacheToGpu", True),
    ("flash_attention", "flashAttention", True, LL + "flashAttention", True),
    ("seed", "seed", 7, L + "seed", on(7)),
    ("eval_batch_size", "evalBatchSize", 512, LL + "evalBatchSize", 512),
    ("rope_frequency_base", "ropeFrequencyBase", 10000.0, LL + "ropeFrequencyBase", on(10000.0)),
    ("rope_frequency_scale", "ropeFrequencyScale", 0.5, LL + "ropeFrequencyScale", on(0.5)),
    ("keep_model_in_memory", "keepModelInMemory", False, LL + "keepModelInMemory", False),
    ("try_mmap", "tryMmap", False, LL + "tryMmap", False),
    ("use_fp16_for_kv_cache", "useFp16ForKVCache", True, LL + "useFp16ForKVCache", True),
    ("num_experts", "numExperts", 4, L + "numExperts", 4),
    ("max_parallel_predictions", "maxParallelPredictions", 4, L + "numParallelSessions", 4),
    (
        "llama_k_cache_quantization_type",
        "llamaKCacheQuantizationType",
        "q8_0",
        LL + "kCacheQuantizationType",
        on("q8_0"),
    ),
    (
        "llama_v_cache_quantization_type",
        "llamaVCacheQuantizationType",
        "q4_0",
        LL + "vCacheQuantizationType",
        on("q4_0"),
    ),
]


# Manual context / memory settings switch LM Studio's automatic fit off, for every engine.
AUTO_FIT_OFF = [
    KVField(key=LL + "autoFit", value=False),
    KVField(key=L + "mlx.autoFit", value=False),
    KVField(key=L + "yuzu.autoFit", value=False),
]
MANUAL_FIT = {"context_length", "gpu_strict_vram_cap"}


def test_every_llm_load_option_is_covered() -> None:
    fields = {f.name for f in msgspec.structs.fields(LLMLoadConfig)} - {"raw", "gpu", "auto_fit"}
    assert {row[0] for row in LLM_LOAD_ROWS} == fields


@pytest.mark.parametrize(("snake", "camel", "value", "key", "wire"), LLM_LOAD_ROWS)
def test_llm_load_option_translates_to_its_kv_key(
    snake: str, camel: str, value: Any, key: str, wire: Any
) -> None:
    by_snake = LLMLoadConfig.from_value({snake: value})
    assert LLMLoadConfig.from_value({camel: value}) == by_snake
    auto_fit = AUTO_FIT_OFF if snake in MANUAL_FIT else []
    assert by_snake.to_kv_fields() == [*auto_fit, KVField(key=key, value=wire)]
    assert LLMLoadConfig.from_kv(KVConfig(fields=[KVField(key=key, value=wire)])) == by_snake


def test_auto_fit_is_explicit_or_switched_off_by_manual_settings() -> None:
    assert LLMLoadConfig(auto_fit=True).to_kv_fields() == [
        KVField(key=f.key, value=True) for f in AUTO_FIT_OFF
    ]
    assert LLMLoadConfig(auto_fit=False).to_kv_fields() == AUTO_FIT_OFF
    # Options that don't size or place the model leave the automatic fit alone.
    assert LLMLoadConfig(flash_attention=True, max_parallel_predictions=2).to_kv_fields() == [
        KVField(key=LL + "flashAttention", value=True),
        KVField(key=L + "numParallelSessions", value=2),
    ]
    assert LLMLoadConfig(gpu=GPUSetting(disabled_gpus=[1])).to_kv_fields() == [
        KVField(
            key="load.gpuSplitConfig",
            value={"strategy": "evenly", "disabledGpus": [1], "priority": [], "customRatio": []},
        )
    ]
    assert LLMLoadConfig(gpu=GPUSetting(ratio="max")).to_kv_fields() == [
        *AUTO_FIT_OFF,
        KVField(key=LL + "acceleration.offloadRatio", value="max"),
    ]
    # An instance's effective config names both its context length and the fit switch.
    loaded = KVConfig(fields=[*AUTO_FIT_OFF, KVField(key=L + "contextLength", value=4096)])
    assert LLMLoadConfig.from_kv(loaded) == LLMLoadConfig(auto_fit=False, context_length=4096)
    on = KVConfig(fields=[KVField(key=LL + "autoFit", value=True)])
    assert LLMLoadConfig.from_kv(on) == LLMLoadConfig(auto_fit=True)


@pytest.mark.parametrize(
    "manual",
    [{"context_length": 2048}, {"gpu": {"ratio": 0.5}}, {"gpu": {"main_gpu": 0}}],
    ids=["context", "ratio", "main_gpu"],
)
def test_auto_fit_true_with_a_manual_setting_is_refused(manual: dict[str, Any]) -> None:
    with pytest.raises(LMStudioConfigError, match="auto_fit=True cannot be combined"):
        LLMLoadConfig.from_value({"auto_fit": True, **manual})


def test_a_manual_setting_assigned_after_construction_obeys_the_auto_fit_rule() -> None:
    config = LLMLoadConfig(auto_fit=True)
    config.context_length = 8192
    with pytest.raises(LMStudioConfigError, match="auto_fit=True cannot be combined"):
        config.to_kv_fields()
    later = LLMLoadConfig()
    later.context_length = 8192
    assert later.to_kv_fields() == [*AUTO_FIT_OFF, KVField(key=L + "contextLength", value=8192)]


def test_a_manual_setting_through_raw_switches_auto_fit_off_too() -> None:
    raw = LLMLoadConfig(raw={L + "contextLength": 8192})
    assert raw.to_kv_fields() == [KVField(key=L + "contextLength", value=8192), *AUTO_FIT_OFF]
    with pytest.raises(LMStudioConfigError, match="also when set through raw"):
        LLMLoadConfig(auto_fit=True, raw={LL + "acceleration.offloadRatio": 0.5})
    # A raw autoFit is the user's own word on automatic fitting: it is sent as given.
    own = LLMLoadConfig(raw={L + "contextLength": 8192, LL + "autoFit": False})
    assert own.to_kv_fields() == [
        KVField(key=L + "contextLength", value=8192),
        KVField(key=LL + "autoFit", value=False),
    ]


def test_gpu_setting_maps_to_ratio_and_split_config() -> None:
    config = LLMLoadConfig.from_value(
        {"gpu": {"ratio": 0.5, "mainGpu": 1, "split_strategy": "favorMainGpu", "disabledGpus": [2]}}
    )
    assert config.to_kv_fields() == [
        *AUTO_FIT_OFF,
        KVField(key=LL + "acceleration.offloadRatio", value=0.5),
        KVField(
            key="load.gpuSplitConfig",
            value={
                "strategy": "priorityOrder",
                "disabledGpus": [2],
                "priority": [1],
                "customRatio": [],
            },
        ),
    ]
    round_trip = LLMLoadConfig.from_kv(KVConfig(fields=config.to_kv_fields()))
    assert round_trip == msgspec.structs.replace(config, auto_fit=False)


@pytest.mark.parametrize(
    ("gpu", "expected"),
    [
        ({"ratio": 2}, r"'gpu.ratio': 2.0 \(expected a number from 0 to 1"),
        ({"split_strategy": "random"}, r"'gpu'.*Invalid enum value 'random'.*splitStrategy"),
        ({"disabled_gpus": ["a"]}, r"'gpu'.*Expected `int`, got `str`.*disabledGpus"),
    ],
)
def test_invalid_gpu_settings(gpu: dict[str, Any], expected: str) -> None:
    with pytest.raises(LMStudioConfigError, match=expected):
        LLMLoadConfig.from_value({"gpu": gpu})


def test_embedding_load_keys_live_under_embedding_load() -> None:
    config = EmbeddingLoadConfig.from_value(
        {
            "contextLength": 2048,
            "gpu": {"ratio": "off"},
            "keep_model_in_memory": True,
            "tryMmap": False,
        }
    )
    assert config.to_kv_fields() == [
        KVField(key="embedding.load.contextLength", value=2048),
        KVField(key="embedding.load.llama.acceleration.offloadRatio", value="off"),
        KVField(key="embedding.load.llama.keepModelInMemory", value=True),
        KVField(key="embedding.load.llama.tryMmap", value=False),
    ]
    assert EmbeddingLoadConfig.from_kv(KVConfig(fields=config.to_kv_fields())) == config
    with pytest.raises(LMStudioConfigError, match="Unknown embedding load config option 'flash"):
        EmbeddingLoadConfig.from_value({"flash_attention": True})


def test_server_load_config_of_the_protocol_example() -> None:
    server = KVConfig(fields=[KVField(key="llm.load.contextLength", value=4096)])
    assert LLMLoadConfig.from_kv(server) == LLMLoadConfig(context_length=4096)

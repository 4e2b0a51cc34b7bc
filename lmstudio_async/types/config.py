"""``PredictionConfig``: typed prediction options and their translation to KV config fields.

Every option is one row of ``_TABLE`` (attribute → KV key → value shape), used both to build
the ``apiOverride`` layer (:meth:`PredictionConfig.to_kv_fields`) and to read the server's
effective config back (:meth:`PredictionConfig.from_kv`). See PROTOCOL.md §3.3.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from .._errors import LMStudioConfigError
from . import _kvmap as m
from .kv import KVConfig, KVField

__all__ = [
    "ContextOverflowPolicy",
    "PredictionConfig",
    "ReasoningParsing",
    "StructuredOutput",
    "ToolChoice",
    "ToolNaming",
]

ContextOverflowPolicy = Literal["stopAtLimit", "truncateMiddle", "rollingWindow"]
"""What to do when the conversation outgrows the context window."""

ToolChoice = Literal["none", "auto", "required"]
"""Whether the model may (``auto``), must (``required``) or must not (``none``) call tools."""

ToolNaming = Literal["passThrough", "removeSpecial", "snakeCase", "camelCase"]
"""How tool names are rewritten before being shown to the model."""


class StructuredOutput(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    """Constrain the output: ``type="json"`` with ``json_schema``, or ``"gbnf"`` with a grammar."""

    type: Literal["none", "json", "gbnf"]
    json_schema: dict[str, Any] | None = None
    gbnf_grammar: str | None = None


class ReasoningParsing(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    """How reasoning ("thinking") blocks are recognised in the model's output."""

    enabled: bool
    start_string: str = "<think>"
    end_string: str = "</think>"


_structured_struct = m.struct_value(
    StructuredOutput, "{'type': 'none'|'json'|'gbnf', 'json_schema'?, 'gbnf_grammar'?}"
)


def _structured(name: str, value: Any) -> Any:
    # Also accept a bare JSON schema dict, or a pydantic model class, as "json" output.
    schema_fn = getattr(value, "model_json_schema", None)
    if isinstance(value, type) and callable(schema_fn):
        return StructuredOutput(type="json", json_schema=schema_fn())
    if isinstance(value, Mapping) and value.get("type") not in ("none", "json", "gbnf"):
        return StructuredOutput(type="json", json_schema=dict(value))
    result = _structured_struct(name, value)
    if result.type == "json" and result.json_schema is None:
        raise LMStudioConfigError(f"Invalid value for {name!r}: type 'json' needs a json_schema.")
    if result.type == "gbnf" and result.gbnf_grammar is None:
        raise LMStudioConfigError(f"Invalid value for {name!r}: type 'gbnf' needs a gbnf_grammar.")
    return result


def _tagged_dict(choices: tuple[str, ...]) -> m.Validator:
    expected = "a dict whose 'type' is one of " + ", ".join(repr(c) for c in choices)

    def validate(name: str, value: Any) -> Any:
        if not isinstance(value, Mapping) or value.get("type") not in choices:
            raise LMStudioConfigError(
                f"Invalid value for {name!r}: {value!r:.80} (expected {expected})."
            )
        return dict(value)

    return validate


def _encode_struct(value: msgspec.Struct) -> Any:
    return msgspec.to_builtins(value)


def _decode_to(cls: type[msgspec.Struct]) -> Any:
    return lambda wire, _current: msgspec.convert(wire, cls)


def _tool_choice_to_wire(value: str) -> Any:
    return {"type": "generic", "mode": value}


def _tool_choice_from_wire(wire: Any, _current: Any) -> Any:
    return wire.get("mode") if isinstance(wire, Mapping) else None


_P = "llm.prediction."
_SD = _P + "speculativeDecoding."
_num, _int = m.number, m.integer

_TABLE = m.Table(
    "prediction config",
    (
        m.Option("max_tokens", _P + "maxPredictedTokens", _int(1, allow_false=True), True, 1000),
        m.Option("temperature", _P + "temperature", _num(0)),
        m.Option("top_p_sampling", _P + "topPSampling", _num(0, 1, allow_false=True), True, 0.95),
        m.Option("top_k_sampling", _P + "topKSampling", _int(-1, 500)),
        m.Option("min_p_sampling", _P + "minPSampling", _num(0, 1, allow_false=True), True, 0.05),
        m.Option("repeat_penalty", _P + "repeatPenalty", _num(0, allow_false=True), True, 1.1),
        m.Option(
            "presence_penalty", _P + "llama.presencePenalty", _num(allow_false=True), True, 0.0
        ),
        m.Option(
            "frequency_penalty", _P + "llama.frequencyPenalty", _num(allow_false=True), True, 0.0
        ),
        m.Option(
            "xtc_probability", _P + "llama.xtcProbability", _num(0, 1, allow_false=True), True, 0.5
        ),
        m.Option(
            "xtc_threshold", _P + "llama.xtcThreshold", _num(0, 1, allow_false=True), True, 0.1
        ),
        m.Option("stop_strings", _P + "stopStrings", m.string_list),
        m.Option("tool_call_stop_strings", _P + "toolCallStopStrings", m.string_list),
        m.Option(
            "context_overflow_policy",
            _P + "contextOverflowPolicy",
            m.one_of(("stopAtLimit", "truncateMiddle", "rollingWindow")),
        ),
        m.Option(
            "structured",
            _P + "structured",
            _structured,
            encode=_encode_struct,
            decode=_decode_to(StructuredOutput),
            aliases=("response_format",),
        ),
        m.Option("raw_tools", _P + "tools", _tagged_dict(("none", "toolArray"))),
        m.Option(
            "tool_choice",
            _P + "toolChoice",
            m.one_of(("none", "auto", "required")),
            encode=_tool_choice_to_wire,
            decode=_tool_choice_from_wire,
        ),
        m.Option(
            "tool_naming",
            _P + "toolNaming",
            m.one_of(("passThrough", "removeSpecial", "snakeCase", "camelCase")),
        ),
        m.Option(
            "reasoning_parsing",
            _P + "reasoning.parsing",
            m.struct_value(ReasoningParsing, "{'enabled': bool, 'start_string', 'end_string'}"),
            encode=_encode_struct,
            decode=_decode_to(ReasoningParsing),
        ),
        m.Option("enable_thinking", _P + "reasoning.enableThinking", m.boolean),
        m.Option(
            "reasoning_budget", _P + "reasoning.budgetTokens", _int(0, allow_false=True), True, 1024
        ),
        m.Option("log_probs", _P + "logProbs", _int(0, 100, allow_false=True), True, 0),
        m.Option("cpu_threads", _P + "llama.cpuThreads", _int(1)),
        m.Option("prompt_template", _P + "promptTemplate", _tagged_dict(("manual", "jinja"))),
        m.Option("draft_model", _SD + "draftModel", m.string),
        m.Option(
            "speculative_decoding_num_draft_tokens_exact", _SD + "numDraftTokensExact", _int(1)
        ),
        m.Option(
            "speculative_decoding_min_draft_length_to_consider",
            _SD + "minDraftLengthToConsider",
            _int(0),
        ),
        m.Option(
            "speculative_decoding_min_continue_drafting_probability",
            _SD + "minContinueDraftingProbability",
            _num(0, 1),
        ),
        m.Option(
            "user_max_image_dimension_pixels",
            _P + "vision.userMaxImageDimensionPixels",
            _int(1, allow_false=True),
            True,
            1024,
        ),
        m.Option(
            "ignore_model_preferred_max_image_dimension",
            _P + "vision.ignoreModelPreferredMaxImageDimension",
            m.boolean,
        ),
        m.Option("seed", _P + "seed", _int(-1, allow_false=True), True, -1),
        m.Option("system_prompt", _P + "systemPrompt", m.string),
    ),
)


class PredictionConfig(msgspec.Struct, kw_only=True, omit_defaults=True, repr_omit_defaults=True):
    """Options for one prediction; ``None`` (the default) leaves the server's setting alone.

    Values are validated when the config is built. ``False`` turns off a checkbox option
    (``max_tokens=False`` means no limit). ``raw`` is a whole KV config applied *under* the
    typed options. Build from a dict (snake_case or TypeScript camelCase keys) with
    :meth:`from_value`.

    ``log_probs`` (0 to 100) asks LM Studio for each generated token's log-probability and that
    many top candidates. They arrive only on streamed fragments (``fragment.tokens``), as in the
    TypeScript SDK: iterate the prediction or pass ``on_prediction_fragment``; the awaited
    :class:`PredictionResult` carries no tokens.
    """

    max_tokens: int | Literal[False] | None = None
    temperature: float | None = None
    top_p_sampling: float | Literal[False] | None = None
    top_k_sampling: int | None = None
    min_p_sampling: float | Literal[False] | None = None
    repeat_penalty: float | Literal[False] | None = None
    presence_penalty: float | Literal[False] | None = None
    frequency_penalty: float | Literal[False] | None = None
    xtc_probability: float | Literal[False] | None = None
    xtc_threshold: float | Literal[False] | None = None
    stop_strings: list[str] | None = None
    tool_call_stop_strings: list[str] | None = None
    context_overflow_policy: ContextOverflowPolicy | None = None
    structured: StructuredOutput | None = None
    raw_tools: dict[str, Any] | None = None
    tool_choice: ToolChoice | None = None
    tool_naming: ToolNaming | None = None
    reasoning_parsing: ReasoningParsing | None = None
    enable_thinking: bool | None = None
    reasoning_budget: int | Literal[False] | None = None
    log_probs: int | Literal[False] | None = None
    cpu_threads: int | None = None
    prompt_template: dict[str, Any] | None = None
    draft_model: str | None = None
    speculative_decoding_num_draft_tokens_exact: int | None = None
    speculative_decoding_min_draft_length_to_consider: int | None = None
    speculative_decoding_min_continue_drafting_probability: float | None = None
    user_max_image_dimension_pixels: int | Literal[False] | None = None
    ignore_model_preferred_max_image_dimension: bool | None = None
    seed: int | Literal[False] | None = None
    system_prompt: str | None = None
    raw: KVConfig | dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _TABLE.validate_all(self)

    @classmethod
    def from_value(cls, value: PredictionConfig | Mapping[str, Any] | None) -> PredictionConfig:
        """Return ``value`` as a config; dicts may use snake_case or camelCase option names."""
        if value is None:
            return cls()
        if isinstance(value, PredictionConfig):
            return value
        if isinstance(value, Mapping):
            return cls(**_TABLE.attrs_from_mapping(value))
        raise LMStudioConfigError(
            f"A prediction config must be a PredictionConfig or a dict, not {type(value).__name__}."
        )

    @classmethod
    def from_kv(cls, config: KVConfig) -> PredictionConfig:
        """Read the typed options out of a server KV config (unknown keys are ignored)."""
        return cls(**_TABLE.attrs_from_kv(config))

    def to_kv_fields(self) -> list[KVField]:
        """Translate to KV fields (``raw`` first, typed options override the same keys)."""
        return _TABLE.to_kv(self)

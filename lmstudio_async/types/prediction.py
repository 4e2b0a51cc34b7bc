"""What a prediction streams (``PredictionFragment``) and what it finally returns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, Literal

import msgspec

from .chat import ToolCallRequest
from .config import PredictionConfig
from .kv import KVConfig
from .load_config import LLMLoadConfig
from .models import LLMInstanceInfo

# ParsedT: the type of ``PredictionResult.parsed`` (``str`` for plain predictions).
if TYPE_CHECKING:
    from typing_extensions import TypeVar

    ParsedT = TypeVar("ParsedT", default=Any)
else:  # the default only matters to type checkers; keep typing_extensions optional at runtime
    from typing import TypeVar

    ParsedT = TypeVar("ParsedT")

__all__ = [
    "CandidateToken",
    "PredictionFragment",
    "PredictionResult",
    "PredictionStats",
    "PredictionToken",
    "PromptProcessingDetails",
    "ReasoningType",
    "StopReason",
    "ToolCallRequest",
]

ReasoningType = Literal["none", "reasoning", "reasoningStartTag", "reasoningEndTag"]
"""Where a fragment sits relative to a reasoning block (tag text has its own types)."""

StopReason = Literal[
    "userStopped",
    "modelUnloaded",
    "failed",
    "eosFound",
    "stopStringFound",
    "toolCalls",
    "maxPredictedTokensReached",
    "contextLengthReached",
]
"""Why generation ended."""


class CandidateToken(msgspec.Struct, rename="camel", kw_only=True, frozen=True, gc=False):
    """A token the sampler considered (TypeScript SDK: ``LLMCandidateToken``).

    ``text`` is the token's text, ``id`` its vocabulary id, ``log_prob`` its natural-log
    probability (0 is certain, more negative is less likely).
    """

    text: str
    id: int
    log_prob: float


class PredictionToken(
    msgspec.Struct, rename="camel", kw_only=True, frozen=True, omit_defaults=True, gc=False
):
    """One generated token and its sampling data (TypeScript SDK: ``LLMToken``).

    ``log_prob`` (natural log) and ``candidates`` (the most likely tokens the sampler
    considered, the chosen one included, most likely first) are only there when the prediction
    asked for them with ``config={"log_probs": N}``.
    """

    text: str
    id: int
    log_prob: float | None = None
    candidates: list[CandidateToken] | None = None


def _no_reasoning() -> ReasoningType:
    return "none"


class PredictionFragment(
    msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True, gc=False
):
    """A piece of streamed output, decoded directly from the wire ``fragment`` object.

    ``is_structural`` defaults to ``False`` for servers that predate it. ``tokens`` lists the
    fragment's tokens with their log-probabilities when the prediction was made with
    ``config={"log_probs": N}`` on a LM Studio that reports them; otherwise it is ``None``.

    Encoded (``msgspec.json.encode(fragment)``, e.g. to forward it), it is LM Studio's wire
    object again: the five fields LM Studio always sends, and ``tokens`` only when present.
    """

    content: str
    # msgspec has no "omit None" switch (jcrist/msgspec#633): with omit_defaults, a field is
    # left out when it holds its default value, but never when the default comes from a
    # factory of a non-collection type. So the five fields LM Studio always sends are always
    # encoded, and ``tokens`` only when it is not None, as LM Studio sends it.
    tokens_count: int = msgspec.field(default_factory=int)
    contains_drafted: bool = msgspec.field(default_factory=bool)
    reasoning_type: ReasoningType = msgspec.field(default_factory=_no_reasoning)
    is_structural: bool = msgspec.field(default_factory=bool)
    tokens: list[PredictionToken] | None = None


class PromptProcessingDetails(msgspec.Struct, rename="camel", kw_only=True, gc=False):
    """Token counts while the prompt is processed (total = cached + processed + unprocessed)."""

    cached_token_count: int
    total_prompt_token_count: int
    processed_prompt_token_count: int
    unprocessed_prompt_token_count: int


class PredictionStats(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True, gc=False):
    """Statistics of a finished prediction, as LM Studio reports them.

    Only ``stop_reason`` is always present; every other field is ``None`` when the server left
    it out (older LM Studio versions, or a value it could not compute). Times are in seconds,
    counts in tokens of the model's own tokenizer.
    """

    stop_reason: StopReason
    """Why generation ended: ``"eosFound"`` (the model finished), ``"userStopped"`` (cancelled
    by the client), ``"maxPredictedTokensReached"``, ``"stopStringFound"``, ``"toolCalls"``,
    ``"contextLengthReached"``, ``"modelUnloaded"`` or ``"failed"``. A reason newer than this
    client arrives as a plain string."""
    stop_string: str | None = None
    """The stop string that ended generation, when ``stop_reason == "stopStringFound"``."""
    tokens_per_second: float | None = None
    """Average generation speed in tokens per second; left out by LM Studio for outputs too
    short to measure."""
    num_gpu_layers: float | None = None
    """Model layers that ran on the GPU (LM Studio documents it as unreliable; ``-1`` is
    seen)."""
    time_to_first_token_sec: float | None = None
    """Seconds from the start of the prediction to its first token: prompt processing
    included."""
    total_time_sec: float | None = None
    """Seconds the whole prediction took in LM Studio (newer versions only)."""
    prompt_tokens_count: int | None = None
    """Tokens of input: the formatted prompt, chat template included."""
    predicted_tokens_count: int | None = None
    """Tokens generated (reasoning included)."""
    total_tokens_count: int | None = None
    """``prompt_tokens_count + predicted_tokens_count``."""
    used_draft_model_key: str | None = None
    """Key of the draft model used for speculative decoding, if any."""
    total_draft_tokens_count: int | None = None
    """Tokens the draft model proposed: accepted + rejected + ignored."""
    accepted_draft_tokens_count: int | None = None
    """Draft tokens the main model accepted."""
    rejected_draft_tokens_count: int | None = None
    """Draft tokens the main model rejected."""
    ignored_draft_tokens_count: int | None = None
    """Draft tokens never submitted for verification."""


class PredictionResult(msgspec.Struct, Generic[ParsedT], kw_only=True):
    """The outcome of a prediction.

    ``parsed`` is the reply as the requested ``response_format`` type (a msgspec Struct, a
    pydantic model, the decoded JSON for a schema dict), parsed once from the non-reasoning
    content; without ``response_format`` it is ``content`` itself.

    ``content`` is all fragment text (reasoning tags included); ``reasoning_content`` and
    ``non_reasoning_content`` split it, leaving out structural fragments. ``load_config`` and
    ``prediction_config`` are the server's effective settings in typed form; the ``raw_*``
    fields keep every key the server sent.

    Per-token data (``config={"log_probs": N}``) is not kept here, as in the TypeScript SDK:
    it is on each streamed :class:`PredictionFragment`'s ``tokens``, so collect it while
    iterating the prediction or in ``on_prediction_fragment``.
    """

    content: str
    reasoning_content: str
    non_reasoning_content: str
    stats: PredictionStats
    model_info: LLMInstanceInfo
    load_config: LLMLoadConfig
    prediction_config: PredictionConfig
    raw_load_config: KVConfig
    raw_prediction_config: KVConfig
    parsed: ParsedT

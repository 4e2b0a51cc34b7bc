"""Context length as LM Studio enforces it (``llm.prediction.contextOverflowPolicy``).

Pure arithmetic on token counts. A prompt longer than the loaded context is truncated per the
policy, except the part the policy must keep (the "kept prefix"): when that alone does not
fit, LM Studio ends the prediction with a hard error. ``stopAtLimit`` keeps the whole prompt
and stops generating (``contextLengthReached``) when the context is full; ``truncateMiddle``
keeps the system prompt and first user message and drops what comes between them and the
latest messages; ``rollingWindow`` keeps the most recent tokens and never errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import _models
from ._envelope import SimulatorError, serialized_error

__all__ = ["ContextBudget", "context_budget"]

_POLICIES = ("stopAtLimit", "truncateMiddle", "rollingWindow")


@dataclass(frozen=True)
class ContextBudget:
    """What fits: prompt tokens actually processed, and the generation limit (None: none)."""

    prompt_tokens: int
    max_generated: int | None


def _kept_prefix_tokens(history: Mapping[str, Any] | None) -> int:
    messages = [m for m in (history or {}).get("messages", []) if isinstance(m, Mapping)]
    kept = [m for m in messages if m.get("role") == "system"]
    first_user = next((m for m in messages if m.get("role") == "user"), None)
    if first_user is not None:
        kept.append(first_user)
    return len(_models.tokenize(_models.apply_prompt_template({"messages": kept})))


def context_budget(
    *,
    prompt_tokens: int,
    context_length: int,
    policy: Any,
    history: Mapping[str, Any] | None,
) -> ContextBudget:
    """The budget for one prediction; raises :class:`SimulatorError` for the hard-error case."""
    if policy not in _POLICIES:
        policy = "truncateMiddle"  # the app's default
    if policy == "rollingWindow":
        return ContextBudget(min(prompt_tokens, context_length - 1), None)
    if policy == "stopAtLimit":
        kept = prompt_tokens
    else:
        kept = min(prompt_tokens, _kept_prefix_tokens(history))
    if prompt_tokens >= context_length and kept >= context_length:
        raise SimulatorError(
            serialized_error(
                f"Trying to keep the first {kept} tokens when context the overflows. However, "
                f"the model is loaded with context length of only {context_length} tokens, "
                "which is not enough. Try to load the model with a larger context length, "
                "or provide a shorter input"
            )
        )
    processed = min(prompt_tokens, context_length - 1)
    if policy == "stopAtLimit":
        return ContextBudget(processed, context_length - processed)
    return ContextBudget(processed, None)

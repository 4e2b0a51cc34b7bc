from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._protocol.packets import PredictSuccess
from ..types.config import PredictionConfig
from ..types.load_config import LLMLoadConfig
from ..types.prediction import PredictionFragment, PredictionResult

if TYPE_CHECKING:
    from ._structured import ResponseFormat

__all__ = ["PredictionAccumulator"]


class PredictionAccumulator:
    """Folds fragments into the final result; pure bookkeeping, no I/O.

    Memory is the content plus constant overhead: fragments are not kept, only their text,
    joined once at the end. Reasoning is split out following LM Studio's rules (PROTOCOL.md
    §3.4): ``content`` is everything; ``reasoning_content`` the non-structural reasoning
    fragments; ``non_reasoning_content`` the non-structural plain ones.
    """

    __slots__ = ("_non_reasoning", "_parts", "_reasoning", "fragment_count")

    def __init__(self) -> None:
        self._parts: list[str] = []
        # Until a reasoning or structural fragment shows up, content == non-reasoning content,
        # so the common case keeps a single list.
        self._reasoning: list[str] | None = None
        self._non_reasoning: list[str] | None = None
        self.fragment_count = 0

    def add(self, fragment: PredictionFragment) -> None:
        content = fragment.content
        self._parts.append(content)
        self.fragment_count += 1
        plain = fragment.reasoning_type == "none" and not fragment.is_structural
        if self._reasoning is None:
            if plain:
                return
            self._reasoning = []
            self._non_reasoning = self._parts[:-1]
        assert self._non_reasoning is not None
        if plain:
            self._non_reasoning.append(content)
        elif fragment.reasoning_type == "reasoning" and not fragment.is_structural:
            self._reasoning.append(content)

    @property
    def content(self) -> str:
        parts = self._parts
        if len(parts) == 1:
            return parts[0]
        # Keep the join: reading the text after every fragment then costs one copy of the
        # text so far, not a walk over every fragment again.
        joined = "".join(parts)
        parts[:] = (joined,)
        return joined

    def finish(
        self, success: PredictSuccess, response_format: ResponseFormat[Any] | None = None
    ) -> PredictionResult[Any]:
        """Build the result; with a ``response_format`` the reply is parsed here, once.

        Raises :class:`LMStudioStructuredOutputError` if the reply does not parse.
        """
        content = "".join(self._parts)
        if self._reasoning is None:
            reasoning, non_reasoning = "", content
        else:
            assert self._non_reasoning is not None
            reasoning, non_reasoning = "".join(self._reasoning), "".join(self._non_reasoning)
        # The pieces are no longer needed once joined: a finished handle keeps the text once
        # (content size plus a constant), not one string object per fragment.
        self._parts = [content]
        if self._reasoning is not None:
            self._reasoning, self._non_reasoning = [reasoning], [non_reasoning]
        parsed: Any = content
        if response_format is not None:
            parsed = response_format.parse_reply(non_reasoning, success.stats.stop_reason)
        return PredictionResult(
            parsed=parsed,
            content=content,
            reasoning_content=reasoning,
            non_reasoning_content=non_reasoning,
            stats=success.stats,
            model_info=success.model_info,
            load_config=LLMLoadConfig.from_kv(success.load_model_config),
            prediction_config=PredictionConfig.from_kv(success.prediction_config),
            raw_load_config=success.load_model_config,
            raw_prediction_config=success.prediction_config,
        )

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._protocol.packets import PredictSuccess
from ..types.config import PredictionConfig
from ..types.load_config import LLMLoadConfig
from ..types.prediction import PredictionFragment, PredictionResult

if TYPE_CHECKING:
    from ._structured import ResponseFormat

__all__ = ["PredictionAccumulator"]

# The one place pieces of text are joined: a seam for the test that counts the copying.
_join = "".join


class PredictionAccumulator:
    """Folds fragments into the final result; pure bookkeeping, no I/O.

    Memory is the content plus constant overhead: fragments are not kept, only their text.
    Reading :attr:`content` joins only the pieces that arrived since the last read, so reading
    it after every fragment stays linear overall. Reasoning is split out following LM
    Studio's rules (PROTOCOL.md §3.4): ``content`` is everything; ``reasoning_content`` the
    non-structural reasoning fragments; ``non_reasoning_content`` the non-structural plain
    ones.
    """

    __slots__ = ("_non_reasoning", "_parts", "_reasoning", "_text", "fragment_count")

    def __init__(self) -> None:
        # The text read so far, and the pieces that arrived after it (content = both).
        self._text = ""
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
            self._non_reasoning = [self._text, *self._parts[:-1]]
        assert self._non_reasoning is not None
        if plain:
            self._non_reasoning.append(content)
        elif fragment.reasoning_type == "reasoning" and not fragment.is_structural:
            self._reasoning.append(content)

    @property
    def content(self) -> str:
        parts = self._parts
        if not parts:
            return self._text
        # Only the new pieces are joined. Appending them with `+=` to a string that nothing
        # else holds grows it in place in CPython (amortised O(1) per character), where
        # building a new string would copy the whole text on every read (quadratic).
        text, self._text = self._text, ""
        text += parts[0] if len(parts) == 1 else _join(parts)
        parts.clear()
        self._text = text
        return text

    def finish(
        self, success: PredictSuccess, response_format: ResponseFormat[Any] | None = None
    ) -> PredictionResult[Any]:
        """Build the result; with a ``response_format`` the reply is parsed here, once.

        Raises :class:`LMStudioStructuredOutputError` if the reply does not parse.
        """
        content = self.content
        if self._reasoning is None:
            reasoning, non_reasoning = "", content
        else:
            assert self._non_reasoning is not None
            reasoning, non_reasoning = "".join(self._reasoning), "".join(self._non_reasoning)
        # The pieces are no longer needed once joined: a finished handle keeps the text once
        # (content size plus a constant), not one string object per fragment.
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

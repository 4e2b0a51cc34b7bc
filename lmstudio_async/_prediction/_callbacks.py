from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from ..types.chat import ToolCallRequest
from ..types.prediction import PredictionFragment

__all__ = ["MaybeAwaitable", "PredictionCallbacks", "invoke"]

MaybeAwaitable: TypeAlias = "Awaitable[None] | None"


async def invoke(callback: Callable[..., Any], *args: Any) -> None:
    """Call a plain or coroutine callback; awaiting only what it returned as awaitable."""
    outcome = callback(*args)
    if inspect.isawaitable(outcome):
        await outcome


@dataclass(frozen=True, slots=True)
class PredictionCallbacks:
    """The callbacks a prediction fires, in the consuming task, in protocol order.

    Each may be a plain function or a coroutine function. ``call_index`` counts tool calls of
    one prediction from 0, independent of the model's own tool call ids.
    """

    on_first_token: Callable[[], MaybeAwaitable] | None = None
    on_prediction_fragment: Callable[[PredictionFragment], MaybeAwaitable] | None = None
    on_prompt_processing_progress: Callable[[float], MaybeAwaitable] | None = None
    on_tool_call_request_start: Callable[[int, str | None], MaybeAwaitable] | None = None
    on_tool_call_request_name_received: Callable[[int, str], MaybeAwaitable] | None = None
    on_tool_call_request_argument_fragment: Callable[[int, str], MaybeAwaitable] | None = None
    on_tool_call_request_end: Callable[[int, ToolCallRequest], MaybeAwaitable] | None = None
    on_tool_call_request_failure: Callable[[int, Exception], MaybeAwaitable] | None = None

    @property
    def any_fragment_callback(self) -> bool:
        return self.on_first_token is not None or self.on_prediction_fragment is not None

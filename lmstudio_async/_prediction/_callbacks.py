from __future__ import annotations

import difflib
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Final, TypeAlias, TypedDict

from .._errors import LMStudioUsageError
from ..types.chat import ToolCallRequest
from ..types.prediction import PredictionFragment

__all__ = [
    "CompletionCallbackArgs",
    "MaybeAwaitable",
    "PredictionCallbackArgs",
    "PredictionCallbacks",
    "invoke",
]

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


class CompletionCallbackArgs(TypedDict, total=False):
    """The callback keyword arguments of ``complete()`` (see :class:`PredictionCallbacks`)."""

    on_first_token: Callable[[], MaybeAwaitable] | None
    on_prediction_fragment: Callable[[PredictionFragment], MaybeAwaitable] | None
    on_prompt_processing_progress: Callable[[float], MaybeAwaitable] | None


class PredictionCallbackArgs(CompletionCallbackArgs, total=False):
    """The callback keyword arguments of ``respond()``: completion's plus tool-call events."""

    on_tool_call_request_start: Callable[[int, str | None], MaybeAwaitable] | None
    on_tool_call_request_name_received: Callable[[int, str], MaybeAwaitable] | None
    on_tool_call_request_argument_fragment: Callable[[int, str], MaybeAwaitable] | None
    on_tool_call_request_end: Callable[[int, ToolCallRequest], MaybeAwaitable] | None
    on_tool_call_request_failure: Callable[[int, Exception], MaybeAwaitable] | None


_ALL_NAMES = tuple(field.name for field in fields(PredictionCallbacks))


def callbacks_from_kwargs(
    given: Mapping[str, Any], *, method: str, allowed: tuple[str, ...] = _ALL_NAMES
) -> PredictionCallbacks:
    """Check the callback keyword arguments a method received and bundle them.

    Type checkers already reject unknown names; this catches them at run time too, with the
    closest valid name, instead of a bare ``TypeError``.
    """
    for name, callback in given.items():
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise LMStudioUsageError(
                f"{method}() got an unexpected keyword argument {name!r}.{hint} Its callbacks "
                f"are: {', '.join(allowed)}."
            )
        if callback is not None and not callable(callback):
            raise LMStudioUsageError(
                f"{method}(): {name} must be a function (plain or async), got {callback!r}."
            )
    return PredictionCallbacks(**given) if given else NO_CALLBACKS


COMPLETION_CALLBACKS = tuple(CompletionCallbackArgs.__annotations__)
# Shared by every prediction without callbacks (immutable), to keep each prediction small.
NO_CALLBACKS: Final = PredictionCallbacks()

from __future__ import annotations

import difflib
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final, TypeAlias, TypedDict

from .._errors import LMStudioUsageError
from ..types.chat import ToolCallRequest
from ..types.prediction import PredictionFragment, PromptProcessingDetails

__all__ = [
    "CompletionCallbackArgs",
    "MaybeAwaitable",
    "PromptProgressCallback",
    "PredictionCallbackArgs",
    "PredictionCallbacks",
    "invoke",
]

MaybeAwaitable: TypeAlias = "Awaitable[None] | None"

PromptProgressCallback: TypeAlias = (
    "Callable[[float], MaybeAwaitable] "
    "| Callable[[float, PromptProcessingDetails | None], MaybeAwaitable]"
)
"""``on_prompt_processing_progress(progress)`` or ``(progress, details)``, as the TypeScript SDK
passes them; ``details`` is ``None`` when LM Studio sent none (older versions, or the final 1.0
this client adds when the server left it out)."""


def _accepts_two_arguments(callback: Callable[..., Any] | None) -> bool:
    if callback is None:
        return False
    try:
        parameters = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature: call them the old way
        return False
    positional = 0
    for parameter in parameters:
        if parameter.kind is parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


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
    ``on_prompt_processing_progress`` gets the :class:`PromptProcessingDetails` as a second
    argument when it takes two.
    """

    on_first_token: Callable[[], MaybeAwaitable] | None = None
    on_prediction_fragment: Callable[[PredictionFragment], MaybeAwaitable] | None = None
    on_prompt_processing_progress: PromptProgressCallback | None = None
    on_tool_call_request_start: Callable[[int, str | None], MaybeAwaitable] | None = None
    on_tool_call_request_name_received: Callable[[int, str], MaybeAwaitable] | None = None
    on_tool_call_request_argument_fragment: Callable[[int, str], MaybeAwaitable] | None = None
    on_tool_call_request_end: Callable[[int, ToolCallRequest], MaybeAwaitable] | None = None
    on_tool_call_request_failure: Callable[[int, Exception], MaybeAwaitable] | None = None
    progress_takes_details: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        # Decided once here, not per packet: a one-argument callback keeps working unchanged.
        takes = _accepts_two_arguments(self.on_prompt_processing_progress)
        object.__setattr__(self, "progress_takes_details", takes)

    @property
    def any_fragment_callback(self) -> bool:
        return self.on_first_token is not None or self.on_prediction_fragment is not None


class CompletionCallbackArgs(TypedDict, total=False):
    """The callback keyword arguments of ``complete()`` (see :class:`PredictionCallbacks`)."""

    on_first_token: Callable[[], MaybeAwaitable] | None
    on_prediction_fragment: Callable[[PredictionFragment], MaybeAwaitable] | None
    on_prompt_processing_progress: PromptProgressCallback | None


class PredictionCallbackArgs(CompletionCallbackArgs, total=False):
    """The callback keyword arguments of ``respond()``: completion's plus tool-call events."""

    on_tool_call_request_start: Callable[[int, str | None], MaybeAwaitable] | None
    on_tool_call_request_name_received: Callable[[int, str], MaybeAwaitable] | None
    on_tool_call_request_argument_fragment: Callable[[int, str], MaybeAwaitable] | None
    on_tool_call_request_end: Callable[[int, ToolCallRequest], MaybeAwaitable] | None
    on_tool_call_request_failure: Callable[[int, Exception], MaybeAwaitable] | None


_ALL_NAMES = tuple(f.name for f in fields(PredictionCallbacks) if f.init)


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

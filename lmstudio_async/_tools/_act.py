"""The ``act()`` loop: predict, run the requested tools, feed results back, repeat (§3.8).

Each round is a fresh prediction over the updated history. Tools of one round run in an anyio
task group inside the loop, so cancelling ``act`` cancels the running prediction (which sends
``cancel`` to LM Studio) and every running tool.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeAlias

import anyio
import msgspec

from .._errors import LMStudioServerError, LMStudioToolCallError, LMStudioUsageError
from .._prediction import PredictionCallbacks, PredictionStream
from .._prediction._callbacks import MaybeAwaitable, invoke
from ..types.chat import (
    Chat,
    ChatMessage,
    TextPart,
    ToolCallRequest,
    ToolCallRequestPart,
    ToolCallResultPart,
)
from ..types.prediction import PredictionFragment, PredictionResult, PredictionStats
from ._definition import Tool

__all__ = [
    "ActCallbacks",
    "ActResult",
    "ActRound",
    "GuardDecision",
    "InvalidToolRequestHandler",
    "ToolCallGuard",
    "ToolCallOutcome",
    "run_act",
]


@dataclass(frozen=True, slots=True)
class GuardDecision:
    """What ``guard_tool_call`` returns: :meth:`allow` (optionally with rewritten arguments)
    or :meth:`deny` with a reason the model is told.
    """

    allowed: bool
    reason: str | None = None
    arguments: dict[str, Any] | None = None

    @classmethod
    def allow(cls, arguments: dict[str, Any] | None = None) -> GuardDecision:
        """Run the call; with ``arguments``, run it with those instead of the model's."""
        return cls(True, None, arguments)

    @classmethod
    def deny(cls, reason: str) -> GuardDecision:
        """Do not run the call; the model gets ``reason`` as the tool's error result."""
        return cls(False, reason, None)


ToolCallGuard: TypeAlias = Callable[[ToolCallRequest], "GuardDecision | Awaitable[GuardDecision]"]
"""``guard_tool_call(request)``: decide, before it runs, whether a tool call may run."""

InvalidToolRequestHandler: TypeAlias = Callable[
    [LMStudioToolCallError, "ToolCallRequest | None"], "str | Awaitable[str | None] | None"
]
"""``handle_invalid_tool_request(error, request)``: return the text to send the model as the
tool result (``None``: the default error result), or raise to stop ``act``. ``request`` is
``None`` when the model failed to produce a parseable tool call at all."""


@dataclass(frozen=True, slots=True)
class ToolCallOutcome:
    """One tool call of a round: the request, the result text sent back, and how it went.

    ``value`` is what the tool returned; ``error`` is set when the call was invalid or the tool
    raised; ``denied_reason`` when ``guard_tool_call`` denied it.
    """

    request: ToolCallRequest
    content: str
    value: Any = None
    error: LMStudioToolCallError | None = None
    denied_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ActRound:
    """One prediction round of ``act``: its result and the tool calls it made.

    ``unexecuted_tool_calls`` holds calls the model made on the last allowed round anyway
    (they are not run, and not added to the chat).
    """

    index: int
    result: PredictionResult[str]
    tool_calls: list[ToolCallOutcome] = field(default_factory=list)
    tool_call_failures: list[LMStudioServerError] = field(default_factory=list)
    unexecuted_tool_calls: list[ToolCallRequest] = field(default_factory=list)

    @property
    def content(self) -> str:
        return self.result.content

    @property
    def stats(self) -> PredictionStats:
        return self.result.stats


@dataclass(frozen=True, slots=True, repr=False)
class ActResult:
    """The outcome of ``act``: every round, the full chat, and the messages ``act`` added.

    ``round_limit_reached`` is true when the model still wanted tools on the last round
    ``max_prediction_rounds`` allowed.
    """

    rounds: list[ActRound]
    chat: Chat
    messages: list[ChatMessage]
    round_limit_reached: bool = False

    @property
    def content(self) -> str:
        """The text of the final round (the model's answer)."""
        return self.rounds[-1].result.content

    @property
    def result(self) -> PredictionResult[str]:
        """The prediction result of the final round."""
        return self.rounds[-1].result

    def __repr__(self) -> str:
        calls = sum(len(r.tool_calls) for r in self.rounds)
        limit = " round_limit_reached" if self.round_limit_reached else ""
        return (
            f"<ActResult rounds={len(self.rounds)} tool_calls={calls}{limit} {self.content!r:.60}>"
        )


@dataclass(frozen=True, slots=True)
class ActCallbacks:
    """The user callbacks of one ``act`` call (plain or coroutine functions)."""

    on_message: Callable[[ChatMessage], MaybeAwaitable] | None = None
    on_round_start: Callable[[int], MaybeAwaitable] | None = None
    on_round_end: Callable[[int], MaybeAwaitable] | None = None
    on_prediction_fragment: Callable[[PredictionFragment, int], MaybeAwaitable] | None = None
    on_prediction_completed: Callable[[ActRound], MaybeAwaitable] | None = None
    on_tool_call_result: Callable[[int, int, ToolCallResultPart], MaybeAwaitable] | None = None

    def __post_init__(self) -> None:
        # Checked before anything is sent: a non-callable would otherwise only fail with a
        # bare TypeError rounds later, when its event first happens.
        for option in fields(self):
            _require_callable(option.name, getattr(self, option.name))


def _require_callable(name: str, callback: object) -> None:
    if callback is not None and not callable(callback):
        raise LMStudioUsageError(
            f"act(): {name} must be a function (plain or async) or None, got {callback!r}."
        )


# predict(chat, final_round, prediction_callbacks) -> a prediction over ``chat``; on the final
# round it must send ``tools: {type: "none"}``.
Predict = Callable[[Chat, bool, PredictionCallbacks], PredictionStream[str]]


def _cancelled_from_outside() -> bool:
    """Whether the running task is being cancelled (an enclosing cancel scope, or a native
    ``task.cancel()`` on 3.11+), as opposed to code inside it raising ``CancelledError``."""
    if anyio.current_effective_deadline() == -math.inf:
        return True
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling is not None and cancelling())


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _encode_result(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _error_content(message: str) -> str:
    return _encode_result({"error": message})


def _with_round(
    callback: Callable[[PredictionFragment, int], MaybeAwaitable] | None, index: int
) -> Callable[[PredictionFragment], MaybeAwaitable] | None:
    if callback is None:
        return None
    return lambda fragment: callback(fragment, index)


class _Round:
    """Collects one round's tool call requests from the prediction's callbacks."""

    __slots__ = ("failures", "index", "requests")

    def __init__(self, index: int) -> None:
        self.index = index
        self.requests: list[ToolCallRequest] = []
        self.failures: list[LMStudioServerError] = []

    def on_end(self, _call_index: int, request: ToolCallRequest) -> None:
        self.requests.append(request)

    def on_failure(self, _call_index: int, error: Exception) -> None:
        if isinstance(error, LMStudioServerError):
            self.failures.append(error)


async def run_act(
    *,
    chat: Chat,
    tools: Sequence[Tool],
    predict: Predict,
    max_prediction_rounds: int | None,
    max_parallel_tool_calls: int,
    guard_tool_call: ToolCallGuard | None,
    handle_invalid_tool_request: InvalidToolRequestHandler | None,
    callbacks: ActCallbacks,
) -> ActResult:
    """Run the tool loop over a copy of ``chat`` (see ``LLM.act`` for the user-facing contract)."""
    if max_prediction_rounds is not None and (
        not isinstance(max_prediction_rounds, int) or max_prediction_rounds < 1
    ):
        raise LMStudioUsageError(
            f"max_prediction_rounds must be a positive int or None, got {max_prediction_rounds!r}."
        )
    if not isinstance(max_parallel_tool_calls, int) or max_parallel_tool_calls < 1:
        raise LMStudioUsageError(
            f"max_parallel_tool_calls must be an int >= 1, got {max_parallel_tool_calls!r}."
        )
    _require_callable("guard_tool_call", guard_tool_call)
    _require_callable("handle_invalid_tool_request", handle_invalid_tool_request)
    runner = _ToolRunner(
        tools, max_parallel_tool_calls, guard_tool_call, handle_invalid_tool_request
    )
    chat = chat.copy()
    rounds: list[ActRound] = []
    messages: list[ChatMessage] = []

    async def add(message: ChatMessage) -> None:
        chat.append(message)
        messages.append(message)
        if callbacks.on_message is not None:
            await invoke(callbacks.on_message, message)

    index = 0
    while True:
        final = max_prediction_rounds is not None and index == max_prediction_rounds - 1
        if callbacks.on_round_start is not None:
            await invoke(callbacks.on_round_start, index)
        collected = _Round(index)
        prediction_callbacks = PredictionCallbacks(
            on_prediction_fragment=_with_round(callbacks.on_prediction_fragment, index),
            on_tool_call_request_end=collected.on_end,
            on_tool_call_request_failure=collected.on_failure,
        )
        result = await predict(chat, final, prediction_callbacks).result()
        for failure in collected.failures:
            # No request to answer; the handler may still stop act by raising.
            error = LMStudioToolCallError(f"The model produced an unparseable tool call: {failure}")
            error.__cause__ = failure
            await runner.report_invalid(error, None)
        requests, unexecuted = collected.requests, []
        if final and requests:
            requests, unexecuted = [], requests
        parts: list[TextPart | ToolCallRequestPart] = [TextPart(text=result.content)]
        parts.extend(ToolCallRequestPart(tool_call_request=r) for r in requests)
        await add(ChatMessage(role="assistant", content=list(parts)))
        outcomes: list[ToolCallOutcome] = []
        if requests:
            outcomes = await runner.run(requests)
            results = [
                ToolCallResultPart(
                    content=o.content, tool_call_id=o.request.id, name=o.request.name
                )
                for o in outcomes
            ]
            if callbacks.on_tool_call_result is not None:
                # Every result the model will see: successes, errors, denials, invalid calls.
                for call_index, result_part in enumerate(results):
                    await invoke(callbacks.on_tool_call_result, index, call_index, result_part)
            await add(ChatMessage(role="tool", content=list(results)))
        this_round = ActRound(index, result, outcomes, collected.failures, unexecuted)
        rounds.append(this_round)
        if callbacks.on_prediction_completed is not None:
            await invoke(callbacks.on_prediction_completed, this_round)
        if callbacks.on_round_end is not None:
            await invoke(callbacks.on_round_end, index)
        if not requests:
            return ActResult(rounds, chat, messages, round_limit_reached=bool(unexecuted))
        index += 1


class _ToolRunner:
    """Checks, guards and runs one round's tool calls; results keep request order."""

    def __init__(
        self,
        tools: Sequence[Tool],
        max_parallel: int,
        guard: ToolCallGuard | None,
        on_invalid: InvalidToolRequestHandler | None,
    ) -> None:
        self._tools = {tool.name: tool for tool in tools}
        self._max_parallel = max_parallel
        self._guard = guard
        self._on_invalid = on_invalid

    async def report_invalid(
        self, error: LMStudioToolCallError, request: ToolCallRequest | None
    ) -> str:
        """The result text for an invalid call (handler's choice or the default)."""
        if self._on_invalid is not None:
            text = await _maybe_await(self._on_invalid(error, request))
            if text is not None:
                if not isinstance(text, str):
                    raise LMStudioUsageError(
                        "handle_invalid_tool_request must return a str (the tool result text) "
                        f"or None, got {type(text).__name__}."
                    )
                return text
        return _error_content(str(error))

    async def _invalid(
        self, request: ToolCallRequest, error: LMStudioToolCallError
    ) -> ToolCallOutcome:
        return ToolCallOutcome(request, await self.report_invalid(error, request), error=error)

    async def _decide(self, request: ToolCallRequest) -> GuardDecision:
        assert self._guard is not None
        decision = await _maybe_await(self._guard(request))
        if not isinstance(decision, GuardDecision):
            raise LMStudioUsageError(
                "guard_tool_call must return GuardDecision.allow(...) or GuardDecision.deny(...), "
                f"got {decision!r:.60}."
            )
        return decision

    async def run(self, requests: list[ToolCallRequest]) -> list[ToolCallOutcome]:
        outcomes: list[ToolCallOutcome | None] = [None] * len(requests)
        runnable: list[tuple[int, Tool, dict[str, Any]]] = []
        for i, request in enumerate(requests):
            tool = self._tools.get(request.name)
            if tool is None:
                available = ", ".join(repr(name) for name in self._tools) or "none"
                error = LMStudioToolCallError(
                    f"Unknown tool {request.name!r}; available tools: {available}."
                )
                outcomes[i] = await self._invalid(request, error)
                continue
            arguments = request.arguments
            if self._guard is not None:
                decision = await self._decide(request)
                if not decision.allowed:
                    reason = decision.reason or "denied"
                    content = _error_content(f"The tool call was denied: {reason}")
                    outcomes[i] = ToolCallOutcome(request, content, denied_reason=reason)
                    continue
                if decision.arguments is not None:
                    arguments = decision.arguments
            try:
                runnable.append((i, tool, tool.validate_arguments(arguments)))
            except LMStudioToolCallError as error:
                outcomes[i] = await self._invalid(request, error)

        # (value, error): the error is what the tool raised, or None.
        returned: dict[int, tuple[Any, BaseException | None]] = {}
        limiter = anyio.CapacityLimiter(self._max_parallel)
        cancelled = anyio.get_cancelled_exc_class()
        fatal: list[BaseException] = []

        async def call(i: int, tool: Tool, arguments: dict[str, Any]) -> None:
            async with limiter:
                try:
                    returned[i] = (await tool.call(arguments), None)
                except Exception as exc:  # the tool's failure is reported to the model
                    returned[i] = (None, exc)
                except cancelled as exc:
                    if _cancelled_from_outside():
                        raise
                    # The tool itself raised it (it awaited something cancelled elsewhere):
                    # a tool failure like any other, not a cancellation of act().
                    returned[i] = (None, exc)
                except BaseException as exc:  # KeyboardInterrupt, SystemExit, the user's own
                    # control flow: stops the whole act() and reaches the caller unwrapped.
                    if not fatal:
                        fatal.append(exc)
                    group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            for i, tool, arguments in runnable:
                group.start_soon(call, i, tool, arguments)
        if fatal:
            raise fatal[0]

        for i, _tool, _arguments in runnable:
            request = requests[i]
            value, exc = returned[i]
            if exc is None:
                try:
                    outcomes[i] = ToolCallOutcome(request, _encode_result(value), value=value)
                    continue
                except (TypeError, ValueError, OverflowError) as encode_error:
                    exc = encode_error
                    message = f"Tool {request.name!r} returned a value that is not JSON: {exc}"
            elif isinstance(exc, cancelled):
                message = (
                    f"Tool {request.name!r} raised {type(exc).__name__} although act() was not "
                    "cancelled: it awaited something that was cancelled elsewhere."
                )
            else:
                message = f"Tool {request.name!r} raised {type(exc).__name__}: {exc}"
            failure = LMStudioToolCallError(message)
            failure.__cause__ = exc
            outcomes[i] = await self._invalid(request, failure)
        assert all(o is not None for o in outcomes)
        return outcomes  # type: ignore[return-value]

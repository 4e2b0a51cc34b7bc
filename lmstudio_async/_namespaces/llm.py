from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

import msgspec

from .. import _telemetry
from .._errors import LMStudioConnectionError, LMStudioRequestRejectedError, LMStudioUsageError
from .._mux import Channel
from .._prediction import PredictionCallbacks, PredictionStream
from .._prediction._callbacks import (
    COMPLETION_CALLBACKS,
    CompletionCallbackArgs,
    MaybeAwaitable,
    PredictionCallbackArgs,
    callbacks_from_kwargs,
)
from .._timeouts import check_timeout, operation_timeout
from ..types.chat import Chat, ChatMessage, ToolCallResultPart
from ..types.config import PredictionConfig, StructuredOutput
from ..types.kv import KVConfig, KVConfigLayer, KVConfigStack, KVField, single_layer_stack
from ..types.load_config import LLMLoadConfig
from ..types.models import LLMInstanceInfo
from ..types.prediction import PredictionFragment
from ._base import ModelHandle, ModelNamespace, ProgressCallback, decode_result

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .._prediction._structured import GBNFGrammar, ResponseFormat, ResponseFormatLike
    from .._tools import (
        ActResult,
        ActRound,
        InvalidToolRequestHandler,
        ToolCallGuard,
        ToolLike,
    )

__all__ = ["LLM", "LLMNamespace"]

HistoryLike = Chat | str | Sequence[Mapping[str, Any] | ChatMessage] | Mapping[str, Any]
ConfigLike = PredictionConfig | Mapping[str, Any] | None

# What LM Studio's own clients send to run `complete()` on servers that predate the
# `completeRawText` endpoint: a template that passes the prompt through verbatim (§3.7).
_VERBATIM_TEMPLATE = KVConfigLayer(
    layer_name="completeModeFormatting",
    config=KVConfig(
        fields=[
            KVField(
                key="llm.prediction.promptTemplate",
                value={
                    "type": "jinja",
                    "jinjaPromptTemplate": {
                        "template": "{% for message in messages %}{{ message['content'] }}"
                        "{% endfor %}"
                    },
                    "stopStrings": [],
                },
            )
        ]
    ),
)


class _Formatted(msgspec.Struct):
    formatted: str


T = TypeVar("T")


def _with_response_format(
    config: PredictionConfig, response_format: object
) -> tuple[PredictionConfig, ResponseFormat[Any] | None]:
    if response_format is None:
        return config, None
    if config.structured is not None:
        raise LMStudioUsageError(
            "Pass the output format once: either response_format= or config['structured'], "
            "not both."
        )
    # Imported here: structured output is opt-in, and its module pulls in schema machinery.
    from .._prediction._structured import resolve_response_format

    fmt = resolve_response_format(response_format)
    return msgspec.structs.replace(config, structured=fmt.structured), fmt


_TOOL_CHOICE_AUTO: Final = {"type": "generic", "mode": "auto"}


def _check_completion_config(config: PredictionConfig) -> None:
    """Refuse options a raw completion cannot honour, as the 2.0 TypeScript client does."""
    if config.raw_tools is not None or config.tool_choice is not None:
        raise LMStudioUsageError(
            "complete() continues raw text and cannot call tools: remove raw_tools / "
            "tool_choice from the config, or use respond() or act()."
        )
    if config.reasoning_budget not in (None, False):
        raise LMStudioUsageError(
            "complete() does not apply a reasoning_budget (it has no chat template to reason "
            "in); remove it, or use respond()."
        )


def _check_preset(preset: str | None) -> None:
    if preset is not None and (not isinstance(preset, str) or not preset):
        raise LMStudioUsageError(f"preset must be a non-empty preset name, got {preset!r}.")


class LLM(ModelHandle[LLMInstanceInfo]):
    """A loaded LLM: ``respond`` to chats and ``complete`` raw text."""

    _namespace_name = "llm"

    @overload
    def respond(
        self,
        history: HistoryLike,
        *,
        response_format: GBNFGrammar | None = None,
        config: ConfigLike = None,
        preset: str | None = None,
        timeout: float | None = None,
        **callbacks: Unpack[PredictionCallbackArgs],
    ) -> PredictionStream[str]: ...
    @overload
    def respond(
        self,
        history: HistoryLike,
        *,
        response_format: type[T],
        config: ConfigLike = None,
        preset: str | None = None,
        timeout: float | None = None,
        **callbacks: Unpack[PredictionCallbackArgs],
    ) -> PredictionStream[T]: ...
    @overload
    def respond(
        self,
        history: HistoryLike,
        *,
        response_format: Mapping[str, Any] | StructuredOutput,
        config: ConfigLike = None,
        preset: str | None = None,
        timeout: float | None = None,
        **callbacks: Unpack[PredictionCallbackArgs],
    ) -> PredictionStream[Any]: ...
    def respond(
        self,
        history: HistoryLike,
        *,
        response_format: ResponseFormatLike | None = None,
        config: ConfigLike = None,
        preset: str | None = None,
        timeout: float | None = None,
        **callbacks: Unpack[PredictionCallbackArgs],
    ) -> PredictionStream[Any]:
        """Continue a conversation. ``history`` is a :class:`Chat`, a list of message dicts,
        or a plain string (one user message).

        ``response_format`` constrains the reply and sets ``result.parsed``: a msgspec Struct
        (or other msgspec-supported) type or a pydantic model class gives an instance of it; a
        JSON schema dict gives the decoded JSON; ``GBNFGrammar("...")`` gives the text. A reply
        that does not validate raises :class:`LMStudioStructuredOutputError` from ``result()``.

        The returned handle starts when first iterated, awaited or entered: iterate it for
        fragments, ``await`` it (or ``await prediction.result()``) for the result.

        Callbacks (plain or coroutine functions, called in the consuming task, in protocol
        order): ``on_prompt_processing_progress(progress)`` from 0.0 to 1.0 (a callback taking
        two arguments also gets the :class:`PromptProcessingDetails`: cached, processed and
        total prompt tokens), ``on_first_token()``, ``on_prediction_fragment(fragment)``, and
        the tool-call events
        ``on_tool_call_request_start(call_index, tool_call_id)``, ``..._name_received(call_index,
        name)``, ``..._argument_fragment(call_index, text)``, ``..._end(call_index, request)``,
        ``..._failure(call_index, error)``.

        ``timeout`` (seconds) bounds the whole prediction from its start, connecting and
        queueing included; it is checked whenever the handle waits for LM Studio. When it
        passes, :class:`LMStudioTimeoutError` is raised and the prediction is cancelled in
        LM Studio. The client's :class:`Timeouts` phase limits apply as well.

        The handle is awaitable but not a coroutine, so ``asyncio.create_task()`` does not take
        it: to run a prediction as a task, give it the ``result()`` coroutine,
        ``asyncio.create_task(model.respond("Hi").result())`` (or iterate the handle inside
        your own coroutine).

        Raises:
            LMStudioUsageError: at once, before anything is sent: ``history`` is not a valid
                chat or has no user message, or ``timeout`` / ``preset`` is invalid.
            LMStudioConfigError: at once: ``config`` has an unknown option or a bad value.
            LMStudioConnectionError: while streaming or awaiting: LM Studio could not be
                reached or the socket dropped (``LMStudioNotFoundError``,
                ``LMStudioAuthenticationError`` are kinds of it).
            LMStudioTimeoutError: ``timeout`` or a :class:`Timeouts` phase limit passed; the
                prediction was cancelled in LM Studio.
            LMStudioModelNotFoundError: the model was unloaded before the prediction started.
            LMStudioPresetNotFoundError: no preset is named ``preset``.
            LMStudioChannelError: LM Studio ended the prediction with an error (its payload is
                attached).
            LMStudioStructuredOutputError: from ``result()``: the reply does not match
                ``response_format``.
            LMStudioClientClosedError: the client was closed.
        """
        chat = Chat.from_history(history)
        chat.require_user_message()
        prediction_config, fmt = _with_response_format(
            PredictionConfig.from_value(config), response_format
        )
        _check_preset(preset)
        return self._predict(
            chat,
            prediction_config.to_kv_fields(),
            preset,
            callbacks_from_kwargs(callbacks, method="respond"),
            fmt,
            timeout=timeout,
        )

    def _predict(
        self,
        chat: Chat,
        fields: list[KVField],
        preset: str | None,
        callbacks: PredictionCallbacks,
        response_format: ResponseFormat[T] | None = None,
        *,
        timeout: float | None = None,
    ) -> PredictionStream[T]:
        parameter: dict[str, Any] = {
            "modelSpecifier": self._specifier,
            "history": chat.to_wire(),
            "predictionConfigStack": single_layer_stack(fields),
        }
        if preset is not None:
            parameter["fuzzyPresetIdentifier"] = preset
        return PredictionStream(
            open_channel=lambda: self._open("predict", parameter),
            resend=self._open,
            callbacks=callbacks,
            description=f"prediction on {self.identifier!r}",
            response_format=response_format,
            timeout=check_timeout(timeout, "timeout"),
            telemetry=_telemetry.prediction("chat", self.identifier, fields, self._source),
        )

    @overload
    def complete(
        self,
        prompt: str,
        *,
        response_format: GBNFGrammar | None = None,
        config: ConfigLike = None,
        preset: str | None = None,
        timeout: float | None = None,
        **callbacks: Unpack[CompletionCallbackArgs],
    ) -> PredictionStream[str]: ...
    @overload
    def complete(
        self,
        prompt: str,
        *,
        response_format: type[T],
        config: ConfigLike = None,
        preset: str | None = None,
        timeout: float | None = None,
        **callbacks: Unpack[CompletionCallbackArgs],
    ) -> PredictionStream[T]: ...
    @overload
    def complete(
        self,
        prompt: str,
        *,
        response_format: Mapping[str, Any] | StructuredOutput,
        config: ConfigLike = None,
        preset: str | None = None,
        timeout: float | None = None,
        **callbacks: Unpack[CompletionCallbackArgs],
    ) -> PredictionStream[Any]: ...
    def complete(
        self,
        prompt: str,
        *,
        response_format: ResponseFormatLike | None = None,
        config: ConfigLike = None,
        preset: str | None = None,
        timeout: float | None = None,
        **callbacks: Unpack[CompletionCallbackArgs],
    ) -> PredictionStream[Any]:
        """Continue raw text verbatim, without the model's chat template.

        ``response_format``, ``timeout`` and the callbacks ``on_first_token``,
        ``on_prediction_fragment`` and ``on_prompt_processing_progress`` work as in
        :meth:`respond`, and it raises the same errors (a ``prompt`` that is not a string is
        an :class:`LMStudioUsageError`).
        """
        if not isinstance(prompt, str):
            raise LMStudioUsageError(
                f"complete() takes the prompt as a string, got {type(prompt).__name__}; "
                "use respond() for chat histories."
            )
        prediction_config, fmt = _with_response_format(
            PredictionConfig.from_value(config), response_format
        )
        _check_completion_config(prediction_config)
        _check_preset(preset)
        fields = prediction_config.to_kv_fields()
        # Preset or server-session stop strings make no sense for raw text: clear them unless
        # the caller set some (what LM Studio's reference client does).
        if prediction_config.stop_strings is None:
            fields.append(KVField(key="llm.prediction.stopStrings", value=[]))
        stack = single_layer_stack(fields)
        raw_parameter: dict[str, Any] = {
            "modelSpecifier": self._specifier,
            "rawPrompt": prompt,
            "predictionConfigStack": stack,
        }
        legacy_parameter: dict[str, Any] = {
            "modelSpecifier": self._specifier,
            "history": Chat.from_history(prompt).to_wire(),
            "predictionConfigStack": KVConfigStack(layers=[*stack.layers, _VERBATIM_TEMPLATE]),
        }
        if preset is not None:
            raw_parameter["fuzzyPresetIdentifier"] = preset
            legacy_parameter["fuzzyPresetIdentifier"] = preset
        return PredictionStream(
            open_channel=lambda: self._open("completeRawText", raw_parameter),
            fallback=lambda: self._open("predict", legacy_parameter),
            resend=self._open,
            callbacks=callbacks_from_kwargs(
                callbacks, method="complete", allowed=COMPLETION_CALLBACKS
            ),
            description=f"completion on {self.identifier!r}",
            response_format=fmt,
            timeout=check_timeout(timeout, "timeout"),
            telemetry=_telemetry.prediction(
                "text_completion", self.identifier, fields, self._source
            ),
        )

    async def act(
        self,
        chat: HistoryLike,
        tools: Iterable[ToolLike],
        *,
        max_prediction_rounds: int | None = None,
        max_parallel_tool_calls: int = 1,
        guard_tool_call: ToolCallGuard | None = None,
        handle_invalid_tool_request: InvalidToolRequestHandler | None = None,
        on_message: Callable[[ChatMessage], MaybeAwaitable] | None = None,
        on_round_start: Callable[[int], MaybeAwaitable] | None = None,
        on_round_end: Callable[[int], MaybeAwaitable] | None = None,
        on_prediction_fragment: Callable[[PredictionFragment, int], MaybeAwaitable] | None = None,
        on_prediction_completed: Callable[[ActRound], MaybeAwaitable] | None = None,
        on_tool_call_result: Callable[[int, int, ToolCallResultPart], MaybeAwaitable] | None = None,
        config: ConfigLike = None,
        preset: str | None = None,
    ) -> ActResult:
        """Let the model call ``tools`` in a loop until it answers without calling any.

        ``chat`` takes the same forms as :meth:`respond` (it is not modified; the full
        conversation is ``result.chat``). ``tools`` are plain functions, sync or async (schema
        from type hints, description from the docstring), or :class:`Tool` objects.

        Each round is one prediction; its tool calls run concurrently, at most
        ``max_parallel_tool_calls`` at a time, and their results go back in request order
        (JSON-encoded). ``max_prediction_rounds`` caps the rounds: the last one is offered no
        tools. ``guard_tool_call(request)`` returns ``GuardDecision.allow()`` (optionally with
        new arguments) or ``GuardDecision.deny(reason)``. Unknown tools, invalid arguments and
        tools that raise go to ``handle_invalid_tool_request(error, request)``; by default the
        model is told the error as the tool result. Callbacks: ``on_message`` for each message
        added, ``on_round_start`` / ``on_round_end`` with the round index,
        ``on_prediction_fragment(fragment, round_index)``, ``on_prediction_completed(round)``,
        ``on_tool_call_result(round_index, call_index, result)`` for each tool result (a
        :class:`ToolCallResultPart` with ``name``, ``tool_call_id`` and the JSON ``content``)
        before it goes back to the model, whether the call succeeded, failed or was denied.
        A callback, guard or handler that is not callable raises :class:`LMStudioUsageError`
        before anything is sent.

        Cancelling the awaiting task cancels the running prediction in LM Studio and every
        running tool, and returns at once: a sync tool's worker thread cannot be interrupted,
        so it finishes in the background and its result is discarded. A tool that itself
        raises ``CancelledError`` (without ``act()`` being cancelled) counts as a failing tool.
        """
        from .._tools import ActCallbacks, run_act, to_tools  # tool use is opt-in: load on use

        callbacks = ActCallbacks(
            on_message=on_message,
            on_round_start=on_round_start,
            on_round_end=on_round_end,
            on_prediction_fragment=on_prediction_fragment,
            on_prediction_completed=on_prediction_completed,
            on_tool_call_result=on_tool_call_result,
        )
        history = Chat.from_history(chat)
        history.require_user_message()
        prediction_config = PredictionConfig.from_value(config)
        if prediction_config.raw_tools is not None:
            raise LMStudioUsageError(
                "act() sends the tools itself; remove raw_tools from the config, or use respond()."
            )
        structured = prediction_config.structured
        if structured is not None and structured.type != "none":
            # A grammar constrains every token, so the model could never emit a tool call.
            raise LMStudioUsageError(
                "act() cannot constrain its output with config['structured']: the grammar "
                "would keep the model from calling tools. Run act() first, then "
                "`await model.respond(result.chat, response_format=...)` for a typed answer."
            )
        _check_preset(preset)
        tool_list = to_tools(tools)
        base_fields = prediction_config.to_kv_fields()
        offered = {"type": "toolArray", "tools": [tool.to_wire() for tool in tool_list]}

        def predict(
            current: Chat, final: bool, callbacks: PredictionCallbacks
        ) -> PredictionStream[str]:
            if not final:
                fields = [*base_fields, KVField(key="llm.prediction.tools", value=offered)]
                return self._predict(current, fields, preset, callbacks)
            # The last round offers no tools, so a tool_choice of "required" could not be met:
            # reset it to "auto" there, as the 2.0 TypeScript client does.
            fields = [
                *base_fields,
                KVField(key="llm.prediction.tools", value={"type": "none"}),
                KVField(key="llm.prediction.toolChoice", value=_TOOL_CHOICE_AUTO),
            ]
            return self._predict(current, fields, preset, callbacks)

        return await run_act(
            chat=history,
            tools=tool_list,
            predict=predict,
            max_prediction_rounds=max_prediction_rounds,
            max_parallel_tool_calls=max_parallel_tool_calls,
            guard_tool_call=guard_tool_call,
            handle_invalid_tool_request=handle_invalid_tool_request,
            callbacks=callbacks,
        )

    async def _open(self, endpoint: str, parameter: Any) -> Channel:
        """Open a prediction channel; ``parameter`` is the creation parameter (or, to send a
        withdrawn one again, its JSON as ``msgspec.Raw``)."""
        for attempt in range(3):
            connection = await self._source._connection("llm")
            if connection.endpoint_unknown(endpoint):
                # Answered once on this socket already: no need to spend a warning (LM Studio
                # sends only five per socket) to learn it again; complete() falls back at once.
                raise LMStudioRequestRejectedError(
                    f"LM Studio does not know the endpoint '{endpoint}'; update LM Studio.",
                    kind="channelEndpointUnknown",
                    endpoint=endpoint,
                )
            try:
                return await connection.open_prediction_channel(endpoint, parameter)
            except LMStudioConnectionError:
                # The socket was retired while this waited for a concurrency slot: the pool
                # has a fresh one for the asking.
                if not connection.retired or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    # -- model management (LLM-only part; the shared methods live on ModelHandle) -------------

    async def get_base_prediction_config(self) -> PredictionConfig:
        """The prediction config this instance starts from before a request's own ``config``.

        It is what LM Studio has set for the model (its per-model defaults and the server's
        session settings), typed; keys this client has no typed option for are ignored.
        """
        raw = await self._call("getBasePredictionConfig", {"specifier": self._specifier})
        return PredictionConfig.from_kv(decode_result(raw, KVConfig, "getBasePredictionConfig"))

    async def apply_prompt_template(
        self, history: HistoryLike, *, config: ConfigLike = None
    ) -> str:
        """The exact prompt text the model would see for ``history`` (its chat template applied).

        ``config`` is a prediction config whose template-related options (e.g. a custom
        ``prompt_template``) are taken into account.
        """
        chat = Chat.from_history(history)
        prediction_config = PredictionConfig.from_value(config)
        raw = await self._call(
            "applyPromptTemplate",
            {
                "specifier": self._specifier,
                "history": chat.to_wire(),
                "predictionConfigStack": single_layer_stack(prediction_config.to_kv_fields()),
                "opts": {},
            },
        )
        return decode_result(raw, _Formatted, "applyPromptTemplate").formatted


class LLMNamespace(ModelNamespace[LLMInstanceInfo]):
    """``client.llm``: get, list and use LLMs."""

    _name = "llm"
    _info_type = LLMInstanceInfo
    _load_config_type = LLMLoadConfig

    async def model(
        self,
        model_key: str | None = None,
        *,
        ttl: float | None = None,
        config: LLMLoadConfig | Mapping[str, Any] | None = None,
        on_load_progress: ProgressCallback | None = None,
        device_identifier: str | None = None,
        timeout: float | None = None,
    ) -> LLM:
        """A handle to a loaded LLM.

        With a key: the model loaded under that identifier, loading it first if needed
        (``ttl`` seconds of idleness before LM Studio unloads it, load ``config``,
        ``on_load_progress`` from 0.0 to 1.0). Without: any model that is loaded.
        ``device_identifier`` picks the LM Link device (see
        ``client.repository.lm_link.status()``) to look for, or load, the model on; by default
        LM Studio chooses. ``timeout`` (seconds) bounds the whole call; when it passes, a load in
        progress is cancelled and :class:`LMStudioTimeoutError` is raised.
        """
        async with operation_timeout(timeout, "client.llm.model()"):
            info = await self._model_info(
                model_key, ttl, config, on_load_progress, device_identifier
            )
        return LLM(self._source, info)

    async def list_loaded(
        self,
        *,
        timeout: float | None = None,
    ) -> list[LLM]:
        """Handles to every LLM currently loaded (``timeout`` in seconds overrides
        ``Timeouts.rpc``)."""
        async with operation_timeout(timeout, "client.llm.list_loaded()"):
            infos = await self._list_loaded_infos()
        return [LLM(self._source, info) for info in infos]

    # -- model management ---------------------------------------------------------------------

    async def load(
        self,
        model_key: str,
        *,
        identifier: str | None = None,
        ttl: float | None = None,
        config: LLMLoadConfig | Mapping[str, Any] | None = None,
        on_progress: ProgressCallback | None = None,
        device_identifier: str | None = None,
    ) -> LLM:
        """Load a new instance of a downloaded LLM and return its handle.

        ``identifier`` names the instance (it must not be in use; by default LM Studio derives
        one from the key), ``ttl`` is the idle time in seconds before LM Studio unloads it,
        ``config`` the load options (e.g. ``{"context_length": 8192}``), ``on_progress`` gets
        floats rising to 1.0, ``device_identifier`` the LM Link device to load it on.
        Cancelling the awaiting task cancels the load in LM Studio.
        """
        info = await self._load_info(
            model_key,
            identifier=identifier,
            ttl=ttl,
            config=config,
            on_progress=on_progress,
            device_identifier=device_identifier,
        )
        return LLM(self._source, info)

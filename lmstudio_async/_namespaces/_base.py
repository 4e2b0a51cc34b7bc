from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Generic, Protocol, TypeVar, overload

import msgspec

from .. import _telemetry
from .._errors import LMStudioProtocolError, LMStudioUsageError
from .._mux import Connection
from .._protocol._mending import Payload, payload_value, sanitized
from .._timeouts import operation_timeout
from ..types.kv import KVConfig, KVField, single_layer_stack
from ..types.load_config import EmbeddingLoadConfig, LLMLoadConfig
from ..types.models import EmbeddingModelInstanceInfo, LLMInstanceInfo
from ..types.resources import EstimatedResourcesUsage, ModelProcessingState
from ._loading import InfoT, ProgressCallback, check_max_concurrency, drive_load, map_bounded

__all__ = [
    "ConnectionSource",
    "ModelHandle",
    "ModelNamespace",
    "ProgressCallback",
    "decode_result",
    "instance_specifier",
    "query_specifier",
]

ResultT = TypeVar("ResultT")


class ConnectionSource(Protocol):
    """Whatever hands out the authenticated connection of a namespace (the client)."""

    async def _connection(self, namespace: str) -> Connection: ...


def query_specifier(identifier: str | None, device_identifier: str | None = None) -> dict[str, Any]:
    """A user-given key becomes an identifier query; none means "any loaded model" (§3.2).

    ``device_identifier`` narrows the query to one LM Link device.
    """
    query: dict[str, Any] = {} if identifier is None else {"identifier": identifier}
    if device_identifier is not None:
        query["deviceIdentifier"] = device_identifier
    return {"type": "query", "query": query}


def instance_specifier(instance_reference: str) -> dict[str, Any]:
    # Handles point at the instance they were obtained for, so a later model that takes the
    # same identifier is never used silently (PROTOCOL.md §3.2).
    return {"type": "instanceReference", "instanceReference": instance_reference}


def decode_result(raw: Payload, result_type: type[ResultT], endpoint: str) -> ResultT:
    """Decode an RPC result; text that is not valid Unicode arrives mended (U+FFFD)."""
    try:
        if type(raw) is msgspec.Raw:
            try:
                return msgspec.json.decode(raw, type=result_type)
            except UnicodeDecodeError:
                pass
        return msgspec.convert(sanitized(payload_value(raw)), result_type)
    except msgspec.ValidationError as exc:
        raise LMStudioProtocolError(
            f"LM Studio answered '{endpoint}' with a result this client cannot read: {exc}"
        ) from exc


def _check_identifier(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 1024:
        raise LMStudioUsageError(
            f"{what} must be a non-empty string of at most 1024 characters, got {value!r}."
        )
    if any(ord(ch) < 32 for ch in value):
        raise LMStudioUsageError(f"{what} must not contain control characters, got {value!r}.")
    return value


class _Tokens(msgspec.Struct):
    tokens: list[int]


class _TokenCount(msgspec.Struct, rename="camel"):
    token_count: int


def _check_text(text: object, method: str) -> str:
    if not isinstance(text, str):
        raise LMStudioUsageError(f"{method}() takes a string, got {type(text).__name__}.")
    return text


def check_texts(texts: object, method: str) -> list[str]:
    """A non-empty list or tuple of strings, else a usage error naming the culprit."""
    if not isinstance(texts, list | tuple):
        raise LMStudioUsageError(
            f"{method}() takes a string or a list of strings, got {type(texts).__name__}."
        )
    if not texts:
        raise LMStudioUsageError(
            f"{method}() got an empty list: pass at least one string (there is nothing to do "
            "for an empty batch, so skip the call)."
        )
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise LMStudioUsageError(
                f"{method}() takes strings only; item {index} is a {type(text).__name__}."
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            # Checked up front so the message names the item and nothing of the batch is sent.
            raise LMStudioUsageError(
                f"{method}() got text that is not valid Unicode at item {index} of the list "
                f"({exc.reason}: {exc.object[exc.start : exc.end]!r}); nothing was sent. This "
                "usually comes from bytes decoded with errors='surrogateescape', e.g. sys.argv "
                "or os.listdir() on a non-UTF-8 system; decode them with the right encoding, or "
                "clean the text with text.encode('utf-8', 'replace').decode('utf-8')."
            ) from None
    return list(texts)


class ModelHandle(Generic[InfoT]):
    """A loaded model instance. Shared by the LLM and embedding handles.

    A handle addresses the exact instance it was obtained for: once that instance is unloaded
    its methods raise :class:`LMStudioModelNotFoundError`, even if another model was loaded
    under the same identifier since.
    """

    _namespace_name: str = ""

    def __init__(self, source: ConnectionSource, info: InfoT) -> None:
        self._source = source
        self._info: InfoT = info
        self._specifier: Final = instance_specifier(info.instance_reference)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.identifier!r} ({self._info.model_key})>"

    @property
    def identifier(self) -> str:
        """The instance identifier (what ``client.llm.model(identifier)`` finds again)."""
        identifier: str = self._info.identifier
        return identifier

    @property
    def info(self) -> InfoT:
        """The instance info as of when this handle was obtained or last :meth:`get_info`."""
        return self._info

    async def _call(self, endpoint: str, parameter: dict[str, Any]) -> Payload:
        connection = await self._source._connection(self._namespace_name)
        return await connection.call(endpoint, parameter)

    async def get_info(self) -> InfoT:
        """Fresh instance info from the server (e.g. ``last_used_time``, ``ttl_ms``)."""
        raw = await self._call(
            "getModelInfo", {"specifier": self._specifier, "throwIfNotFound": True}
        )
        info: InfoT = decode_result(raw, type(self._info), "getModelInfo")
        self._info = info
        return info

    async def _get_load_kv(self) -> KVConfig:
        raw = await self._call("getLoadConfig", {"specifier": self._specifier})
        return decode_result(raw, KVConfig, "getLoadConfig")

    @overload
    async def get_load_config(self: ModelHandle[LLMInstanceInfo]) -> LLMLoadConfig: ...
    @overload
    async def get_load_config(
        self: ModelHandle[EmbeddingModelInstanceInfo],
    ) -> EmbeddingLoadConfig: ...
    async def get_load_config(self) -> LLMLoadConfig | EmbeddingLoadConfig:
        """The load config the instance is running with, typed (unknown keys are ignored)."""
        kv = await self._get_load_kv()
        if isinstance(self._info, LLMInstanceInfo):
            return LLMLoadConfig.from_kv(kv)
        return EmbeddingLoadConfig.from_kv(kv)

    async def get_processing_state(self) -> ModelProcessingState:
        """What the instance is doing now: ``status`` (``"idle"``, ``"processingPrompt"``,
        ``"generating"``, ``"computingEmbedding"``) and ``queued`` requests, the running one
        included. Raises :class:`LMStudioModelNotFoundError` once the instance is unloaded.
        """
        raw = await self._call(
            "getInstanceProcessingState", {"specifier": self._specifier, "throwIfNotFound": True}
        )
        return decode_result(raw, ModelProcessingState, "getInstanceProcessingState")

    async def get_context_length(self) -> int:
        """The context length (in tokens) the instance was loaded with."""
        return (await self.get_info()).context_length

    @overload
    async def tokenize(self, text: str) -> list[int]: ...
    @overload
    async def tokenize(
        self, text: list[str] | tuple[str, ...], *, max_concurrency: int = 16
    ) -> list[list[int]]: ...
    async def tokenize(
        self, text: str | list[str] | tuple[str, ...], *, max_concurrency: int = 16
    ) -> list[int] | list[list[int]]:
        """The model's token ids for a text; for a list, one list of ids per text, in order.

        A list issues one request per text, at most ``max_concurrency`` at a time.
        """
        limit = check_max_concurrency(max_concurrency)
        if isinstance(text, str):
            return await self._tokenize_one(text)
        texts = check_texts(text, "tokenize")
        return await map_bounded(self._tokenize_one, texts, max_concurrency=limit)

    async def _tokenize_one(self, text: str) -> list[int]:
        raw = await self._call("tokenize", {"specifier": self._specifier, "inputString": text})
        return decode_result(raw, _Tokens, "tokenize").tokens

    async def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` is for this model."""
        _check_text(text, "count_tokens")
        raw = await self._call("countTokens", {"specifier": self._specifier, "inputString": text})
        return decode_result(raw, _TokenCount, "countTokens").token_count

    async def unload(self) -> None:
        """Unload this instance from LM Studio's memory.

        Raises :class:`LMStudioModelNotFoundError` if it is no longer loaded; a model loaded
        since under the same identifier is left alone.
        """
        # unloadModel only takes an identifier; checking the instance reference first keeps a
        # stale handle from unloading a newer model that took over the identifier.
        await self._call("getModelInfo", {"specifier": self._specifier, "throwIfNotFound": True})
        parameter: dict[str, Any] = {"identifier": self.identifier}
        if self._info.device_identifier is not None:
            parameter["deviceIdentifier"] = self._info.device_identifier  # an LM Link device
        await self._call("unloadModel", parameter)


class ModelNamespace(Generic[InfoT]):
    """Shared ``model()`` / ``list_loaded()`` / ``load()`` / ``unload()`` of llm and embedding."""

    _name: str = ""
    _info_type: type[InfoT]
    _load_config_type: type[LLMLoadConfig] | type[EmbeddingLoadConfig]

    def __init__(self, source: ConnectionSource) -> None:
        self._source = source

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    async def _connection(self) -> Connection:
        return await self._source._connection(self._name)

    async def _list_loaded_infos(self) -> list[InfoT]:
        connection = await self._connection()
        raw = await connection.call("listLoaded")
        return decode_result(raw, list[self._info_type], "listLoaded")  # type: ignore[name-defined]

    async def _any_loaded_info(self, device_identifier: str | None) -> InfoT:
        connection = await self._connection()
        specifier = query_specifier(None, device_identifier)
        raw = await connection.call(
            "getModelInfo", {"specifier": specifier, "throwIfNotFound": True}
        )
        info: InfoT = decode_result(raw, self._info_type, "getModelInfo")
        return info

    async def _model_info(
        self,
        model_key: str | None,
        ttl: float | None,
        config: object,
        on_load_progress: ProgressCallback | None,
        device_identifier: str | None = None,
    ) -> InfoT:
        """What ``model()`` resolves: the instance under a key (loaded if needed), or any."""
        device = _check_device(device_identifier)
        if model_key is None:
            if ttl is not None or config is not None or on_load_progress is not None:
                raise LMStudioUsageError(
                    "ttl, config and on_load_progress apply only when a model key is given: "
                    f"client.{self._name}.model('model-key', ...)."
                )
            return await self._any_loaded_info(device)
        return await self._get_or_load_info(
            model_key,
            ttl=ttl,
            config=config,
            on_load_progress=on_load_progress,
            device_identifier=device,
        )

    def _load_fields(self, config: object) -> list[KVField]:
        return self._load_config_type.from_value(config).to_kv_fields()  # type: ignore[arg-type]

    async def _get_or_load_info(
        self,
        model_key: str,
        *,
        ttl: float | None,
        config: object,
        on_load_progress: ProgressCallback | None,
        device_identifier: str | None = None,
    ) -> InfoT:
        _check_identifier(model_key, "The model key")
        parameter: dict[str, Any] = {
            "identifier": model_key,
            "loadConfigStack": single_layer_stack(self._load_fields(config)),
        }
        if device_identifier is not None:
            parameter["deviceIdentifier"] = device_identifier
        if ttl is not None:
            parameter["loadTtlMs"] = _ttl_ms(ttl)
        connection = await self._connection()
        channel = connection.open_channel("getOrLoad", parameter)
        # A load span only if LM Studio has to load the model: finding it loaded is no load.
        with _telemetry.possible_operation("load_model", model_key, self._source) as begin:
            return await drive_load(
                channel,
                namespace=self._name,
                model_key=model_key,
                info_type=self._info_type,
                on_progress=on_load_progress,
                on_load_start=begin,
            )

    async def _load_info(
        self,
        model_key: str,
        *,
        identifier: str | None,
        ttl: float | None,
        config: object,
        on_progress: ProgressCallback | None,
        device_identifier: str | None = None,
    ) -> InfoT:
        _check_identifier(model_key, "The model key")
        parameter: dict[str, Any] = {
            "modelKey": model_key,
            "loadConfigStack": single_layer_stack(self._load_fields(config)),
        }
        if identifier is not None:
            parameter["identifier"] = _check_identifier(identifier, "The identifier")
        if device_identifier is not None:
            parameter["deviceIdentifier"] = _check_device(device_identifier)
        if ttl is not None:
            parameter["ttlMs"] = _ttl_ms(ttl)
        connection = await self._connection()
        channel = connection.open_channel("loadModel", parameter)
        with _telemetry.operation("load_model", model_key, self._source):
            return await drive_load(
                channel,
                namespace=self._name,
                model_key=model_key,
                info_type=self._info_type,
                on_progress=on_progress,
            )

    async def estimate_resources_usage(
        self,
        model_key: str,
        *,
        config: LLMLoadConfig | EmbeddingLoadConfig | Mapping[str, Any] | None = None,
        device_identifier: str | None = None,
        timeout: float | None = None,
    ) -> EstimatedResourcesUsage:
        """LM Studio's estimate of the memory loading ``model_key`` with ``config`` would take.

        ``config`` is a load config (typed or dict) as for ``load()``; setting the context
        length or GPU options by hand estimates that exact setup instead of LM Studio's
        automatic fit. The result gives bytes for the weights, the context and both, on the GPU
        and in total, the estimate's confidence, and ``passes_guardrails``: whether LM Studio's
        loading guardrails would allow the load. Nothing is loaded. Raises
        :class:`LMStudioModelNotFoundError` for a key that is not downloaded.
        ``device_identifier`` estimates for that LM Link device instead of the default one.
        ``timeout`` (seconds) replaces ``Timeouts.rpc``.
        """
        _check_identifier(model_key, "The model key")
        parameter: dict[str, Any] = {
            "modelKey": model_key,
            "loadConfigStack": single_layer_stack(self._load_fields(config)),
        }
        if device_identifier is not None:
            parameter["deviceIdentifier"] = _check_device(device_identifier)
        async with operation_timeout(timeout, f"client.{self._name}.estimate_resources_usage()"):
            connection = await self._connection()
            raw = await connection.call("estimateModelUsage", parameter)
        return decode_result(raw, EstimatedResourcesUsage, "estimateModelUsage")

    async def unload(self, identifier: str, *, device_identifier: str | None = None) -> None:
        """Unload the instance loaded under ``identifier``.

        ``device_identifier`` names the LM Link device it runs on (from
        ``client.repository.lm_link.status()``; this machine's own identifier means only
        here). Without it LM Studio looks on LM Link's preferred device, then this machine,
        then the other linked devices, and unloads the first instance it finds under
        ``identifier``, which may be on another machine (the 2.0 TypeScript SDK documents the
        same order). Raises :class:`LMStudioModelNotFoundError` if no model of this kind is
        loaded under it.
        """
        _check_identifier(identifier, "The identifier")
        parameter: dict[str, Any] = {"identifier": identifier}
        if device_identifier is not None:
            parameter["deviceIdentifier"] = _check_device(device_identifier)
        connection = await self._connection()
        await connection.call("unloadModel", parameter)


def _check_device(device_identifier: object) -> str | None:
    if device_identifier is None:
        return None
    return _check_identifier(device_identifier, "device_identifier (an LM Link device)")


def _ttl_ms(ttl: float) -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
        raise LMStudioUsageError(
            f"ttl must be a positive number of seconds (idle time before LM Studio unloads the "
            f"model), got {ttl!r}."
        )
    return max(1, round(ttl * 1000))

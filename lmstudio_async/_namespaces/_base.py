from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Generic, Protocol, TypeVar

import msgspec

from .._errors import LMStudioCancelledError, LMStudioProtocolError, LMStudioUsageError
from .._mux import Channel, ChannelClosed, Connection
from .._prediction._callbacks import MaybeAwaitable, invoke
from .._protocol.packets import (
    GET_OR_LOAD_TYPES,
    AlreadyLoaded,
    GetOrLoadProgress,
    GetOrLoadSuccess,
    StartLoading,
    UnknownPacket,
    decode_packet,
    get_or_load_packets,
)
from ..types.kv import single_layer_stack
from ..types.models import EmbeddingModelInstanceInfo, LLMInstanceInfo

__all__ = [
    "ConnectionSource",
    "ModelHandle",
    "ModelNamespace",
    "decode_result",
    "instance_specifier",
    "query_specifier",
    "run_channel",
]

InfoT = TypeVar("InfoT", LLMInstanceInfo, EmbeddingModelInstanceInfo)
ResultT = TypeVar("ResultT")
ProgressCallback = Callable[[float], MaybeAwaitable]


class ConnectionSource(Protocol):
    """Whatever hands out the authenticated connection of a namespace (the client)."""

    async def connection(self, namespace: str) -> Connection: ...


def query_specifier(identifier: str | None) -> dict[str, Any]:
    """A user-given key becomes an identifier query; none means "any loaded model" (§3.2)."""
    query: dict[str, Any] = {} if identifier is None else {"identifier": identifier}
    return {"type": "query", "query": query}


def instance_specifier(instance_reference: str) -> dict[str, Any]:
    # Handles point at the instance they were obtained for, so a later model that takes the
    # same identifier is never used silently (PROTOCOL.md §3.2).
    return {"type": "instanceReference", "instanceReference": instance_reference}


def decode_result(raw: msgspec.Raw, result_type: type[ResultT], endpoint: str) -> ResultT:
    try:
        return msgspec.json.decode(raw, type=result_type)
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


async def run_channel(channel: Channel, on_packet: Callable[[Any], Any]) -> Any:
    """Drive a non-prediction channel: feed packets to ``on_packet`` until it returns non-None.

    Cancelling the caller cancels the operation server-side and releases the channel.
    """
    try:
        while True:
            try:
                raw = await channel.next()
            except ChannelClosed:
                raise LMStudioProtocolError(
                    f"LM Studio closed the '{channel.endpoint}' channel without a result."
                ) from None
            outcome = await on_packet(raw)
            if outcome is not None:
                return outcome
    except BaseException:
        channel.abandon()
        raise


class ModelHandle(Generic[InfoT]):
    """A loaded model instance. Shared by the LLM and embedding handles."""

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
        """The instance info as of when this handle was obtained."""
        return self._info

    async def _call(self, endpoint: str, parameter: dict[str, Any]) -> msgspec.Raw:
        connection = await self._source.connection(self._namespace_name)
        return await connection.call(endpoint, parameter)


class ModelNamespace(Generic[InfoT]):
    """Shared ``model()`` / ``list_loaded()`` of the llm and embedding namespaces."""

    _name: str = ""
    _info_type: type[InfoT]

    def __init__(self, source: ConnectionSource) -> None:
        self._source = source

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    async def _connection(self) -> Connection:
        return await self._source.connection(self._name)

    async def _list_loaded_infos(self) -> list[InfoT]:
        connection = await self._connection()
        raw = await connection.call("listLoaded")
        return decode_result(raw, list[self._info_type], "listLoaded")  # type: ignore[name-defined]

    async def _any_loaded_info(self) -> InfoT:
        connection = await self._connection()
        raw = await connection.call(
            "getModelInfo", {"specifier": query_specifier(None), "throwIfNotFound": True}
        )
        info: InfoT = decode_result(raw, self._info_type, "getModelInfo")
        return info

    async def _get_or_load_info(
        self,
        model_key: str,
        *,
        ttl: float | None,
        load_fields: list[Any],
        on_load_progress: ProgressCallback | None,
    ) -> InfoT:
        _check_identifier(model_key, "The model key")
        parameter: dict[str, Any] = {
            "identifier": model_key,
            "loadConfigStack": single_layer_stack(load_fields),
        }
        if ttl is not None:
            parameter["loadTtlMs"] = _ttl_ms(ttl)
        connection = await self._connection()
        channel = connection.open_channel("getOrLoad", parameter)
        info_type = self._info_type

        async def on_packet(raw: msgspec.Raw) -> InfoT | None:
            packet = decode_packet(get_or_load_packets, raw, GET_OR_LOAD_TYPES)
            if isinstance(packet, AlreadyLoaded | GetOrLoadSuccess):
                if not isinstance(packet.info, info_type):
                    other = "embedding" if self._name == "llm" else "llm"
                    raise LMStudioUsageError(
                        f"{model_key!r} is not a {self._name} model; it is loaded as an "
                        f"{other} model: use client.{other}.model({model_key!r})."
                    )
                if on_load_progress is not None and isinstance(packet, GetOrLoadSuccess):
                    await invoke(on_load_progress, 1.0)
                return packet.info
            if isinstance(packet, GetOrLoadProgress) and on_load_progress is not None:
                await invoke(on_load_progress, min(max(packet.progress, 0.0), 1.0))
            elif isinstance(packet, StartLoading | UnknownPacket):
                pass
            return None

        try:
            result: InfoT = await run_channel(channel, on_packet)
        except LMStudioCancelledError:
            raise
        return result


def _ttl_ms(ttl: float) -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
        raise LMStudioUsageError(
            f"ttl must be a positive number of seconds (idle time before LM Studio unloads the "
            f"model), got {ttl!r}."
        )
    return max(1, round(ttl * 1000))

"""Envelope encoding, serialized errors and parameter validation (no I/O here).

Outgoing envelopes are msgspec structs; a channel packet may be given pre-encoded as
``msgspec.Raw`` so hot paths (fragments) can encode a packet once and splice it in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = [
    "KEEP_ALIVE_ACK",
    "LAYER_NAMES",
    "InvalidParameter",
    "SimulatorError",
    "channel_close",
    "channel_error",
    "channel_send",
    "decode",
    "encode",
    "rpc_error",
    "rpc_result",
    "serialized_error",
    "warning",
]

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder()

LAYER_NAMES = frozenset(
    {
        "currentlyEditing",
        "currentlyLoaded",
        "apiOverride",
        "conversationSpecific",
        "conversationGlobal",
        "preset",
        "serverSession",
        "httpServerRequestOverride",
        "completeModeFormatting",
        "instance",
        "userModelDefault",
        "virtualModel",
        "modelDefault",
        "hardware",
    }
)


class _Envelope(msgspec.Struct, tag_field="type", rename="camel", omit_defaults=True):
    pass


class _ChannelSend(_Envelope, tag="channelSend"):
    channel_id: int
    message: msgspec.Raw


class _ChannelClose(_Envelope, tag="channelClose"):
    channel_id: int


class _ChannelError(_Envelope, tag="channelError"):
    channel_id: int
    error: dict[str, Any]


class _RpcResult(_Envelope, tag="rpcResult"):
    call_id: int
    result: Any = msgspec.UNSET


class _RpcError(_Envelope, tag="rpcError"):
    call_id: int
    error: dict[str, Any]


class _Warning(_Envelope, tag="communicationWarning"):
    warning: str
    kind: str


KEEP_ALIVE_ACK = b'{"type":"keepAliveAck"}'


def encode(value: Any) -> bytes:
    """Strict JSON (msgspec never emits NaN/Infinity literals)."""
    return _ENCODER.encode(value)


def decode(data: str | bytes) -> Any:
    """Parse one incoming frame; raises ``msgspec.DecodeError`` on malformed JSON."""
    return _DECODER.decode(data)


def channel_send(channel_id: int, message: Mapping[str, Any] | msgspec.Raw) -> bytes:
    raw = message if isinstance(message, msgspec.Raw) else msgspec.Raw(encode(message))
    return encode(_ChannelSend(channel_id=channel_id, message=raw))


def channel_close(channel_id: int) -> bytes:
    return encode(_ChannelClose(channel_id=channel_id))


def channel_error(channel_id: int, error: dict[str, Any]) -> bytes:
    return encode(_ChannelError(channel_id=channel_id, error=error))


def rpc_result(call_id: int, result: Any = msgspec.UNSET) -> bytes:
    """``result`` left UNSET encodes a void result (no ``result`` key at all)."""
    return encode(_RpcResult(call_id=call_id, result=result))


def rpc_error(call_id: int, error: dict[str, Any]) -> bytes:
    return encode(_RpcError(call_id=call_id, error=error))


def warning(kind: str, text: str) -> bytes:
    return encode(_Warning(warning=text, kind=kind))


def serialized_error(
    title: str,
    *,
    cause: str | None = None,
    suggestion: str | None = None,
    display_data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``SerializedLMSExtendedError`` shaped like the app's (``rootTitle`` = ``title``)."""
    error: dict[str, Any] = {"title": title, "rootTitle": title}
    if cause is not None:
        error["cause"] = cause
    if suggestion is not None:
        error["suggestion"] = suggestion
    if display_data is not None:
        error["displayData"] = display_data
    return error


class SimulatorError(Exception):
    """Raised by handlers; becomes an ``rpcError``/``channelError`` carrying ``error``."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("title", "Unknown error"))
        self.error = error


class InvalidParameter(Exception):
    """A parameter failed validation; the server only sends a ``communicationWarning``."""


# ---- validation helpers (a small stand-in for the app's zod schemas) ----------------------


def require_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidParameter(f"{what}: expected object, received {type(value).__name__}")
    return value


def require_str(obj: Mapping[str, Any], key: str, *, max_len: int = 1024) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= max_len:
        raise InvalidParameter(f"{key}: expected non-empty string")
    return value


def optional_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidParameter(f"{key}: expected string")
    return value


def optional_nullable_str(obj: Mapping[str, Any], key: str) -> None:
    if key in obj and obj[key] is not None and not isinstance(obj[key], str):
        raise InvalidParameter(f"{key}: expected string or null")


def optional_positive_int(obj: Mapping[str, Any], key: str) -> int | None:
    if key not in obj:
        return None
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidParameter(f"{key}: expected integer >= 1")
    return value


def require_bool(obj: Mapping[str, Any], key: str) -> bool:
    value = obj.get(key)
    if not isinstance(value, bool):
        raise InvalidParameter(f"{key}: expected boolean")
    return value


def require_specifier(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    spec = require_object(obj.get(key), key)
    kind = spec.get("type")
    if kind == "query":
        query = require_object(spec.get("query"), f"{key}.query")
        for field in ("identifier", "path"):
            if field in query:
                value = query[field]
                if not isinstance(value, str) or not 0 < len(value) <= 1024:
                    raise InvalidParameter(f"{key}.query.{field}: expected string")
        if "vision" in query and not isinstance(query["vision"], bool):
            raise InvalidParameter(f"{key}.query.vision: expected boolean")
        return spec
    if kind == "instanceReference":
        require_str(spec, "instanceReference")
        return spec
    raise InvalidParameter(f"{key}.type: expected 'query' or 'instanceReference'")


def require_config(value: Any, what: str) -> dict[str, Any]:
    config = require_object(value, what)
    fields = config.get("fields")
    if not isinstance(fields, list):
        raise InvalidParameter(f"{what}.fields: expected array")
    for entry in fields:
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise InvalidParameter(f"{what}.fields: expected {{key, value}} entries")
    return config


def require_config_stack(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    stack = require_object(obj.get(key), key)
    layers = stack.get("layers")
    if not isinstance(layers, list):
        raise InvalidParameter(f"{key}.layers: expected array")
    for layer in layers:
        layer = require_object(layer, f"{key}.layers[]")
        if layer.get("layerName") not in LAYER_NAMES:
            raise InvalidParameter(f"{key}.layers[].layerName: invalid enum value")
        require_config(layer.get("config"), f"{key}.layers[].config")
    return stack


def require_history(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    history = require_object(obj.get(key), key)
    messages = history.get("messages")
    if not isinstance(messages, list):
        raise InvalidParameter(f"{key}.messages: expected array")
    for message in messages:
        message = require_object(message, f"{key}.messages[]")
        if message.get("role") not in ("system", "user", "assistant", "tool"):
            raise InvalidParameter(f"{key}.messages[].role: invalid enum value")
        if not isinstance(message.get("content"), list):
            raise InvalidParameter(f"{key}.messages[].content: expected array")
    return history


def flatten_stack(stack: Mapping[str, Any]) -> dict[str, Any]:
    """Collapse a ``KVConfigStack``: later layers override earlier ones, key by key."""
    fields: dict[str, Any] = {}
    for layer in stack.get("layers", []):
        for entry in layer.get("config", {}).get("fields", []):
            fields[entry["key"]] = entry.get("value")
    return fields

"""The envelope messages that carry every packet over a namespace socket (PROTOCOL.md §2).

Incoming frames are decoded in one pass into a tagged union; the endpoint-specific payload
(``message``/``result``/``error``) stays :class:`msgspec.Raw` so that the channel or call it
belongs to decodes it with its own typed decoder, exactly once.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

__all__ = [
    "ChannelAckIn",
    "ChannelCloseIn",
    "ChannelErrorIn",
    "ChannelSendIn",
    "CommunicationWarningIn",
    "IncomingEnvelope",
    "KeepAliveAckIn",
    "RpcErrorIn",
    "RpcResultIn",
    "SignalMessageIn",
    "decode_envelope",
    "encode_cancel",
    "encode_channel_create",
    "encode_channel_send",
    "encode_rpc_call",
]


class _In(msgspec.Struct, tag_field="type", rename="camel", kw_only=True):
    pass


class ChannelSendIn(_In, tag="channelSend"):
    channel_id: int
    message: msgspec.Raw
    ack_id: int | None = None


class ChannelAckIn(_In, tag="channelAck"):
    channel_id: int
    ack_id: int


class ChannelCloseIn(_In, tag="channelClose"):
    channel_id: int


class ChannelErrorIn(_In, tag="channelError"):
    channel_id: int
    error: Any = None


class RpcResultIn(_In, tag="rpcResult"):
    call_id: int
    # Absent for void results; Raw so the caller decodes it with its own result type.
    result: msgspec.Raw = msgspec.Raw(b"null")


class RpcErrorIn(_In, tag="rpcError"):
    call_id: int
    error: Any = None


class CommunicationWarningIn(_In, tag="communicationWarning"):
    warning: str = ""
    kind: str | None = None


class KeepAliveAckIn(_In, tag="keepAliveAck"):
    pass


class SignalMessageIn(_In, tag="signalUpdate"):
    """Signals are unused by public endpoints; decoded only to be ignored cleanly."""

    subscribe_id: int | None = None


IncomingEnvelope = (
    ChannelSendIn
    | ChannelAckIn
    | ChannelCloseIn
    | ChannelErrorIn
    | RpcResultIn
    | RpcErrorIn
    | CommunicationWarningIn
    | KeepAliveAckIn
    | SignalMessageIn
)

_envelope_decoder: Final = msgspec.json.Decoder(IncomingEnvelope)


def decode_envelope(frame: str | bytes) -> IncomingEnvelope:
    """Decode one server frame. Raises :class:`msgspec.DecodeError` for anything unusable."""
    envelope: IncomingEnvelope = _envelope_decoder.decode(frame)
    return envelope


# Outgoing messages. Parameters arrive already as plain structures or msgspec Structs, so a
# single shared encoder serialises the whole frame in one pass; absent parameters are omitted
# entirely (PROTOCOL.md §6 item 2: void parameters must be absent, never null or {}).


class _Out(msgspec.Struct, tag_field="type", rename="camel", kw_only=True, omit_defaults=True):
    pass


class _ChannelCreateOut(_Out, tag="channelCreate"):
    endpoint: str
    channel_id: int
    creation_parameter: Any = msgspec.UNSET


class _ChannelSendOut(_Out, tag="channelSend"):
    channel_id: int
    message: Any


class _RpcCallOut(_Out, tag="rpcCall"):
    endpoint: str
    call_id: int
    parameter: Any = msgspec.UNSET


_encoder: Final = msgspec.json.Encoder()
_CANCEL: Final = {"type": "cancel"}


def encode_channel_create(endpoint: str, channel_id: int, parameter: Any = msgspec.UNSET) -> bytes:
    return _encoder.encode(
        _ChannelCreateOut(endpoint=endpoint, channel_id=channel_id, creation_parameter=parameter)
    )


def encode_channel_send(channel_id: int, message: Any) -> bytes:
    return _encoder.encode(_ChannelSendOut(channel_id=channel_id, message=message))


def encode_cancel(channel_id: int) -> bytes:
    return encode_channel_send(channel_id, _CANCEL)


def encode_rpc_call(endpoint: str, call_id: int, parameter: Any = msgspec.UNSET) -> bytes:
    return _encoder.encode(_RpcCallOut(endpoint=endpoint, call_id=call_id, parameter=parameter))

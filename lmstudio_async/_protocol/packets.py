"""Typed packets of the channels this SDK opens (PROTOCOL.md §3.4, §3.9, §3.10).

Each endpoint has one module-level decoder for the tagged union of its server packets, so a
channel packet is decoded exactly once, straight into typed structs.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import msgspec

from ..types.chat import ToolCallRequest
from ..types.kv import KVConfig
from ..types.models import (
    EmbeddingModelInstanceInfo,
    LLMInstanceInfo,
    ModelInfo,
)
from ..types.prediction import PredictionFragment, PredictionStats, PromptProcessingDetails
from ._lenient import recover_predict_packet
from ._mending import Payload, payload_value, sanitized

__all__ = [
    "AlreadyLoaded",
    "FragmentPacket",
    "LoadProgress",
    "LoadResolved",
    "LoadSuccess",
    "PredictSuccess",
    "PromptProcessingProgress",
    "StartLoading",
    "ToolCallGenerationArgumentFragment",
    "ToolCallGenerationEnd",
    "ToolCallGenerationFailed",
    "ToolCallGenerationNameReceived",
    "ToolCallGenerationStart",
    "UnloadingOtherJITModel",
    "FragmentSend",
    "decode_packet",
    "fragment_sends",
    "predict_packets",
]


class _Packet(msgspec.Struct, tag_field="type", rename="camel", kw_only=True):
    pass


# -- predict / completeRawText -------------------------------------------------------------


class PromptProcessingProgress(_Packet, tag="promptProcessingProgress"):
    progress: float
    details: PromptProcessingDetails | None = None


class FragmentPacket(_Packet, tag="fragment"):
    # Servers before December 2024 sent the fragment as a bare string.
    fragment: PredictionFragment | str


class ToolCallGenerationStart(_Packet, tag="toolCallGenerationStart"):
    tool_call_id: str | None = None


class ToolCallGenerationNameReceived(_Packet, tag="toolCallGenerationNameReceived"):
    name: str


class ToolCallGenerationArgumentFragment(
    _Packet, tag="toolCallGenerationArgumentFragmentGenerated"
):
    content: str


class ToolCallGenerationEnd(_Packet, tag="toolCallGenerationEnd"):
    tool_call_request: ToolCallRequest
    raw_content: str | None = None


class ToolCallGenerationFailed(_Packet, tag="toolCallGenerationFailed"):
    error: Any = None
    raw_content: str | None = None


class PredictSuccess(_Packet, tag="success"):
    stats: PredictionStats
    model_info: LLMInstanceInfo
    load_model_config: KVConfig = msgspec.field(default_factory=lambda: KVConfig(fields=[]))
    prediction_config: KVConfig = msgspec.field(default_factory=lambda: KVConfig(fields=[]))


class FragmentSend(msgspec.Struct, tag_field="type", tag="channelSend", rename="camel"):
    """A whole ``channelSend`` frame whose packet is a ``fragment``, decoded in one pass.

    The receive loop tries this first: a streamed fragment is then parsed once, envelope and
    packet together, instead of as an envelope with a :class:`msgspec.Raw` packet that the
    prediction parses again. Any other frame fails it and takes the general path.
    """

    channel_id: int
    message: FragmentPacket


PredictPacket = (
    PromptProcessingProgress
    | FragmentPacket
    | ToolCallGenerationStart
    | ToolCallGenerationNameReceived
    | ToolCallGenerationArgumentFragment
    | ToolCallGenerationEnd
    | ToolCallGenerationFailed
    | PredictSuccess
)

# -- loadModel / getOrLoad (llm and embedding share the shapes, with their own info types) -----


class LoadResolved(_Packet, tag="resolved"):
    info: ModelInfo
    ambiguous: list[str] | None = None


class LoadProgress(_Packet, tag="progress"):
    progress: float


class LoadSuccess(_Packet, tag="success"):
    info: LLMInstanceInfo | EmbeddingModelInstanceInfo


class AlreadyLoaded(_Packet, tag="alreadyLoaded"):
    info: LLMInstanceInfo | EmbeddingModelInstanceInfo


class StartLoading(_Packet, tag="startLoading"):
    identifier: str
    info: ModelInfo | None = None


class GetOrLoadProgress(_Packet, tag="loadProgress"):
    progress: float


class GetOrLoadSuccess(_Packet, tag="loadSuccess"):
    info: LLMInstanceInfo | EmbeddingModelInstanceInfo


class UnloadingOtherJITModel(_Packet, tag="unloadingOtherJITModel"):
    info: Any = None


LoadModelPacket = LoadResolved | LoadProgress | LoadSuccess
GetOrLoadPacket = (
    AlreadyLoaded | StartLoading | GetOrLoadProgress | GetOrLoadSuccess | UnloadingOtherJITModel
)

predict_packets: Final = msgspec.json.Decoder(PredictPacket)
fragment_sends: Final = msgspec.json.Decoder(FragmentSend)
load_model_packets: Final = msgspec.json.Decoder(LoadModelPacket)
get_or_load_packets: Final = msgspec.json.Decoder(GetOrLoadPacket)

_T = TypeVar("_T")


class UnknownPacket(msgspec.Struct, frozen=True):
    """A packet type this client does not know (a newer server); callers skip it."""

    type: str


_any_packet: Final = msgspec.json.Decoder(dict[str, Any])


def decode_packet(
    decoder: msgspec.json.Decoder[_T], raw: Payload | FragmentPacket, known: frozenset[str]
) -> _T | UnknownPacket:
    """Decode one channel packet; an unknown ``type`` becomes :class:`UnknownPacket`.

    A *known* packet that fails validation is a real protocol problem and raises
    :class:`msgspec.ValidationError` -- unless it is a predict packet carrying an enumeration
    value newer than this client, which is accepted as a plain string. A packet with invalid
    UTF-8 or lone surrogates (see ``_mending``) is decoded with its text mended, not refused. A
    :class:`FragmentPacket` was decoded with its envelope already (:class:`FragmentSend`).
    """
    if isinstance(raw, FragmentPacket):
        if decoder is predict_packets:
            fragment: _T = raw  # type: ignore[assignment]
            return fragment
        return UnknownPacket("fragment")  # not a packet of this channel's endpoint
    packet: Any
    if type(raw) is msgspec.Raw:
        try:
            return decoder.decode(raw)
        except (msgspec.ValidationError, UnicodeDecodeError):
            pass
        try:
            packet = _any_packet.decode(raw)
        except UnicodeDecodeError:
            packet = _mended_packet(decoder, raw)
    else:
        packet = _mended_packet(decoder, raw)
    if not isinstance(packet, dict):
        raise msgspec.ValidationError(f"Expected a packet object, got {type(packet).__name__}")
    packet_type = packet.get("type")
    if isinstance(packet_type, str) and packet_type not in known:
        return UnknownPacket(packet_type)
    try:
        converted: _T = msgspec.convert(packet, decoder.type)
        return converted
    except msgspec.ValidationError:
        if decoder is predict_packets:
            recovered: _T = recover_predict_packet(packet, PredictPacket)
            return recovered
        raise


def _mended_packet(decoder: msgspec.json.Decoder[Any], raw: Payload) -> Any:
    # Fragment text keeps lone surrogate halves: the stream joins a pair split across packets.
    return sanitized(payload_value(raw), keep_fragment_text=decoder is predict_packets)


PREDICT_TYPES: Final = frozenset(
    {
        "promptProcessingProgress",
        "fragment",
        "toolCallGenerationStart",
        "toolCallGenerationNameReceived",
        "toolCallGenerationArgumentFragmentGenerated",
        "toolCallGenerationEnd",
        "toolCallGenerationFailed",
        "success",
    }
)
LOAD_MODEL_TYPES: Final = frozenset({"resolved", "progress", "success"})
GET_OR_LOAD_TYPES: Final = frozenset(
    {"alreadyLoaded", "startLoading", "loadProgress", "loadSuccess", "unloadingOtherJITModel"}
)

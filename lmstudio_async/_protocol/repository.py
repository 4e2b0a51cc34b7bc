"""Wire structs of the ``/repository`` namespace (PROTOCOL.md §4.4): model search, download
options and the ``downloadModel`` channel's packets."""

from __future__ import annotations

from typing import Final

import msgspec

from ..types.repository import DownloadProgress, ModelSearchResultIdentifier

__all__ = [
    "DOWNLOAD_MODEL_TYPES",
    "DownloadOptionData",
    "DownloadOptions",
    "DownloadProgressPacket",
    "DownloadStartFinalizing",
    "DownloadSuccess",
    "SearchResultData",
    "SearchResults",
    "download_model_packets",
]


class SearchResultData(msgspec.Struct, rename="camel", kw_only=True, frozen=True):
    name: str
    identifier: ModelSearchResultIdentifier
    exact: bool = False
    staff_pick: bool = False


class SearchResults(msgspec.Struct, frozen=True):
    results: list[SearchResultData]


class DownloadOptionData(msgspec.Struct, rename="camel", kw_only=True, frozen=True):
    name: str
    size_bytes: int
    fit_estimation: str
    download_identifier: str
    indexed_model_identifier: str
    quantization: str | None = None
    recommended: bool = False
    # Required since LM Studio 2.0's schema; older apps omit it.
    compatibility_type: str | None = None


class DownloadOptions(msgspec.Struct, frozen=True):
    results: list[DownloadOptionData]


class _Packet(msgspec.Struct, tag_field="type", rename="camel", kw_only=True):
    pass


class DownloadProgressPacket(_Packet, tag="downloadProgress"):
    update: DownloadProgress


class DownloadStartFinalizing(_Packet, tag="startFinalizing"):
    pass


class DownloadSuccess(_Packet, tag="success"):
    default_identifier: str


download_model_packets: Final = msgspec.json.Decoder(
    DownloadProgressPacket | DownloadStartFinalizing | DownloadSuccess
)
DOWNLOAD_MODEL_TYPES: Final = frozenset({"downloadProgress", "startFinalizing", "success"})

"""What ``client.repository`` returns: model search results, download progress, LM Link."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "DownloadProgress",
    "FitEstimation",
    "LMLinkDevice",
    "LMLinkLastError",
    "LMLinkPeer",
    "LMLinkStatus",
    "ModelSearchResultIdentifier",
]

FitEstimation = Literal["fullGPUOffload", "partialGPUOffload", "fitWithoutGPU", "willNotFit"]
"""LM Studio's guess of how a download option would run on this machine."""


class ModelSearchResultIdentifier(msgspec.Struct, rename="camel", kw_only=True, frozen=True):
    """Where a search result comes from: LM Studio's ``"catalog"`` or Hugging Face (``"hf"``)."""

    type: Literal["catalog", "hf"] | str
    identifier: str


class DownloadProgress(msgspec.Struct, rename="camel", kw_only=True, frozen=True):
    """One progress report of a download: bytes so far, bytes in all, current speed (bytes/s)."""

    downloaded_bytes: int
    total_bytes: int
    speed_bytes_per_second: float

    @property
    def fraction(self) -> float:
        """Progress from 0.0 to 1.0 (0.0 while the total is still unknown)."""
        if self.total_bytes <= 0:
            return 0.0
        return min(self.downloaded_bytes / self.total_bytes, 1.0)


class LMLinkPeer(msgspec.Struct, rename="camel", kw_only=True, frozen=True):
    """Another machine in this LM Link: its identifier, display name and connection status."""

    device_identifier: str
    device_name: str
    status: Literal["connected", "disconnected"] | str


class LMLinkLastError(msgspec.Struct, kw_only=True, frozen=True):
    """LM Link's most recent error: its message and when it happened (Unix time in ms)."""

    message: str
    timestamp: int


class LMLinkDevice(msgspec.Struct, kw_only=True, frozen=True):
    """A machine models can run on: this one (``is_local``) or a linked peer.

    ``device_identifier`` is what ``device_identifier=`` on ``client.llm.model()`` /
    ``load()`` / ``unload()`` takes; ``connected`` is whether LM Link reaches it now.
    """

    device_identifier: str
    device_name: str
    is_local: bool
    connected: bool


class LMLinkStatus(msgspec.Struct, rename="camel", kw_only=True, frozen=True, omit_defaults=True):
    """What ``client.repository.lm_link.status()`` returns (LM Studio's ``lmLinkStatus``).

    ``status`` is ``"offline"``, ``"starting"``, ``"online"`` or ``"stopping"``; ``issues``
    name what keeps LM Link from starting (``"deviceDisabled"``, ``"notLoggedIn"``,
    ``"noAccess"``, ``"badVersion"``); ``device_identifier`` / ``device_name`` describe this
    machine (no identifier until LM Link has registered it); ``peers`` are the other machines;
    ``preferred_device_identifier`` is where models load when no device is named;
    ``reconnect_in_seconds`` and ``last_error`` are there while LM Link retries.
    :attr:`devices` lists this machine and its peers together.
    """

    status: Literal["offline", "starting", "online", "stopping"] | str
    issues: list[str]
    peers: list[LMLinkPeer]
    device_identifier: str | None
    device_name: str
    preferred_device_identifier: str | None = None
    reconnect_in_seconds: int | None = None
    last_error: LMLinkLastError | None = None

    @property
    def devices(self) -> list[LMLinkDevice]:
        """This machine first (when it has an identifier), then every peer."""
        devices = [
            LMLinkDevice(
                device_identifier=peer.device_identifier,
                device_name=peer.device_name,
                is_local=False,
                connected=peer.status == "connected",
            )
            for peer in self.peers
        ]
        if self.device_identifier is not None:
            local = LMLinkDevice(
                device_identifier=self.device_identifier,
                device_name=self.device_name,
                is_local=True,
                connected=self.status == "online",
            )
            devices.insert(0, local)
        return devices

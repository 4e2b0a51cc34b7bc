from __future__ import annotations

import msgspec

from .._timeouts import operation_timeout
from ..types.models import ModelInfo
from ._base import ConnectionSource, decode_result

__all__ = ["LMStudioVersion", "SystemNamespace"]


class LMStudioVersion(msgspec.Struct, frozen=True):
    """The LM Studio app's version, e.g. ``LMStudioVersion(version='0.3.30', build=2)``."""

    version: str
    build: int = 0


class SystemNamespace:
    """``client.system``: what is downloaded, and which LM Studio this is."""

    def __init__(self, source: ConnectionSource) -> None:
        self._source = source

    def __repr__(self) -> str:
        return "<SystemNamespace>"

    async def list_downloaded_models(self, *, timeout: float | None = None) -> list[ModelInfo]:
        """Every model on disk, LLMs and embedding models alike (tell them apart by ``type``).

        ``timeout`` (seconds) bounds the call, replacing ``Timeouts.rpc``.
        """
        async with operation_timeout(timeout, "client.system.list_downloaded_models()"):
            connection = await self._source._connection("system")
            raw = await connection.call("listDownloadedModels")
        return decode_result(raw, list[ModelInfo], "listDownloadedModels")

    async def version(self, *, timeout: float | None = None) -> LMStudioVersion:
        """The LM Studio app version (``timeout`` in seconds replaces ``Timeouts.rpc``)."""
        async with operation_timeout(timeout, "client.system.version()"):
            connection = await self._source._connection("system")
            raw = await connection.call("version")
        return decode_result(raw, LMStudioVersion, "version")

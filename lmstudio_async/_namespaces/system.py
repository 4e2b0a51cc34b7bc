from __future__ import annotations

import msgspec

from .._timeouts import operation_timeout
from ..types.models import ModelInfo
from ._base import ConnectionSource, _check_identifier, decode_result

__all__ = ["LMStudioVersion", "ServiceInfo", "SystemNamespace"]


class LMStudioVersion(msgspec.Struct, frozen=True):
    """The LM Studio app's version, e.g. ``LMStudioVersion(version='0.3.30', build=2)``."""

    version: str
    build: int = 0


class ServiceInfo(msgspec.Struct, rename="camel", kw_only=True, frozen=True):
    """The running LM Studio process: ``pid``, ``is_daemon`` (running headless as a service,
    e.g. ``lms daemon``, rather than the desktop app) and the app ``version``."""

    pid: int
    is_daemon: bool
    version: str


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

    async def list_downloaded_model_variants(
        self, model_key: str, *, timeout: float | None = None
    ) -> list[ModelInfo]:
        """The downloaded variants (e.g. quantizations) of a model with several, as model infos.

        Raises :class:`LMStudioServerError` when LM Studio has no variants for ``model_key``
        (:class:`LMStudioModelNotFoundError` when the key is not downloaded at all).
        ``timeout`` (seconds) replaces ``Timeouts.rpc``.
        """
        _check_identifier(model_key, "The model key")
        async with operation_timeout(timeout, "client.system.list_downloaded_model_variants()"):
            connection = await self._source._connection("system")
            raw = await connection.call("listDownloadedModelVariants", {"modelKey": model_key})
        return decode_result(raw, list[ModelInfo], "listDownloadedModelVariants")

    async def info(self, *, timeout: float | None = None) -> ServiceInfo:
        """The LM Studio process: pid, whether it runs as a daemon, its version.

        An LM Studio too old to know this request raises :class:`LMStudioProtocolError`.
        ``timeout`` (seconds) replaces ``Timeouts.rpc``.
        """
        async with operation_timeout(timeout, "client.system.info()"):
            connection = await self._source._connection("system")
            raw = await connection.call("info")
        return decode_result(raw, ServiceInfo, "info")

    async def version(self, *, timeout: float | None = None) -> LMStudioVersion:
        """The LM Studio app version (``timeout`` in seconds replaces ``Timeouts.rpc``)."""
        async with operation_timeout(timeout, "client.system.version()"):
            connection = await self._source._connection("system")
            raw = await connection.call("version")
        return decode_result(raw, LMStudioVersion, "version")

"""``client.repository``: find models to download, download them, and LM Link (PROTOCOL.md §4.4).

A download is the ``downloadModel`` channel: progress packets, ``startFinalizing`` once the
bytes are in, then ``success`` with the model key to load. Leaving ``download()`` early in any
way (task cancellation, a timeout, a failing callback) abandons the channel, which sends
``cancel`` so LM Studio stops downloading.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from .._errors import LMStudioProtocolError, LMStudioUsageError
from .._mux import Channel, ChannelClosed
from .._prediction._callbacks import MaybeAwaitable, invoke
from .._protocol.packets import decode_packet
from .._protocol.repository import (
    DOWNLOAD_MODEL_TYPES,
    DownloadOptionData,
    DownloadOptions,
    DownloadProgressPacket,
    DownloadStartFinalizing,
    DownloadSuccess,
    SearchResultData,
    SearchResults,
    download_model_packets,
)
from .._timeouts import operation_timeout
from ..types.repository import DownloadProgress, LMLinkStatus, ModelSearchResultIdentifier
from ._base import ConnectionSource, decode_result

__all__ = [
    "DownloadProgressCallback",
    "LMLinkNamespace",
    "ModelSearchResultDownloadOption",
    "ModelSearchResultEntry",
    "RepositoryNamespace",
]

DownloadProgressCallback = Callable[[DownloadProgress], MaybeAwaitable]
"""Called with each :class:`DownloadProgress` (plain or coroutine function)."""

_MAX_SEARCH_RESULTS = 25  # LM Studio's limit on searchModels
_COMPATIBILITY_TYPES = (
    "gguf",
    "safetensors",
    "onnx",
    "ggml",
    "pte",
    "mlx_placeholder",
    "torch_safetensors",
    "yuzu",
)


class ModelSearchResultDownloadOption:
    """One file (usually a quantization) a search result can be downloaded as.

    ``name``, ``quantization`` (e.g. ``"Q4_K_M"``), ``size_bytes``, ``fit_estimation`` (how LM
    Studio expects it to run here: ``"fullGPUOffload"``, ``"partialGPUOffload"``,
    ``"fitWithoutGPU"``, ``"willNotFit"``), ``recommended`` (LM Studio's pick for this machine),
    ``indexed_model_identifier`` and ``compatibility_type`` (``"gguf"``, ``"safetensors"``...;
    ``None`` from LM Studio versions before 2.0).
    """

    def __init__(self, source: ConnectionSource, data: DownloadOptionData) -> None:
        self._source = source
        self._data = data
        self.name = data.name
        self.quantization = data.quantization
        self.size_bytes = data.size_bytes
        self.fit_estimation = data.fit_estimation
        self.recommended = data.recommended
        self.indexed_model_identifier = data.indexed_model_identifier
        self.compatibility_type = data.compatibility_type

    def __repr__(self) -> str:
        pick = " recommended" if self.recommended else ""
        return (
            f"<ModelSearchResultDownloadOption {self.name!r} {self.size_bytes:,} bytes "
            f"{self.fit_estimation}{pick}>"
        )

    async def download(
        self,
        *,
        on_progress: DownloadProgressCallback | None = None,
        on_start_finalizing: Callable[[], MaybeAwaitable] | None = None,
    ) -> str:
        """Download this option and return the model key to load it with.

        ``on_progress(progress)`` gets each :class:`DownloadProgress` (bytes downloaded, total
        bytes, speed in bytes/s, and ``fraction`` from 0.0 to 1.0);
        ``on_start_finalizing()`` runs once the bytes are in and LM Studio is setting the model
        up. Both may be plain or coroutine functions. Cancelling the awaiting task (or a
        timeout around it) cancels the download in LM Studio. A download LM Studio fails raises
        :class:`LMStudioServerError`.
        """
        for name, callback in (
            ("on_progress", on_progress),
            ("on_start_finalizing", on_start_finalizing),
        ):
            if callback is not None and not callable(callback):
                raise LMStudioUsageError(
                    f"download(): {name} must be a function (plain or async), got {callback!r}."
                )
        connection = await self._source._connection("repository")
        channel = connection.open_channel(
            "downloadModel", {"downloadIdentifier": self._data.download_identifier}
        )
        return await _drive_download(channel, self.name, on_progress, on_start_finalizing)


async def _drive_download(
    channel: Channel,
    name: str,
    on_progress: DownloadProgressCallback | None,
    on_start_finalizing: Callable[[], MaybeAwaitable] | None,
) -> str:
    try:
        while True:
            try:
                raw = await channel.next()
            except ChannelClosed:
                raise LMStudioProtocolError(
                    f"LM Studio ended the download of {name!r} without reporting success."
                ) from None
            try:
                packet = decode_packet(download_model_packets, raw, DOWNLOAD_MODEL_TYPES)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise LMStudioProtocolError(
                    f"LM Studio sent a 'downloadModel' packet this client cannot read: {exc}"
                ) from exc
            if isinstance(packet, DownloadSuccess):
                return packet.default_identifier
            if isinstance(packet, DownloadProgressPacket):
                if on_progress is not None:
                    await invoke(on_progress, packet.update)
            elif isinstance(packet, DownloadStartFinalizing) and on_start_finalizing is not None:
                await invoke(on_start_finalizing)
            # Packet types from newer LM Studio versions carry nothing awaited here.
    except BaseException:
        channel.abandon()
        raise


class ModelSearchResultEntry:
    """A model found by ``search_models``: ``name``, ``identifier`` (catalog or Hugging Face),
    ``exact`` (the name matched the query exactly) and ``staff_pick``."""

    def __init__(self, source: ConnectionSource, data: SearchResultData) -> None:
        self._source = source
        self.name = data.name
        self.identifier: ModelSearchResultIdentifier = data.identifier
        self.exact = data.exact
        self.staff_pick = data.staff_pick

    def __repr__(self) -> str:
        return f"<ModelSearchResultEntry {self.name!r} ({self.identifier.type})>"

    async def get_download_options(
        self, *, timeout: float | None = None
    ) -> list[ModelSearchResultDownloadOption]:
        """The files this model can be downloaded as, LM Studio's recommendation marked.

        ``timeout`` (seconds) replaces ``Timeouts.rpc``.
        """
        async with operation_timeout(timeout, "get_download_options()"):
            connection = await self._source._connection("repository")
            raw = await connection.call(
                "getModelDownloadOptions", {"modelSearchResultIdentifier": self.identifier}
            )
        options = decode_result(raw, DownloadOptions, "getModelDownloadOptions").results
        return [ModelSearchResultDownloadOption(self._source, option) for option in options]


class LMLinkNamespace:
    """``client.repository.lm_link``: the machines linked to this LM Studio."""

    def __init__(self, source: ConnectionSource) -> None:
        self._source = source

    def __repr__(self) -> str:
        return "<LMLinkNamespace>"

    async def status(self, *, timeout: float | None = None) -> LMLinkStatus:
        """LM Link's state and devices (:class:`LMLinkStatus`; ``.devices`` lists them all).

        An LM Studio without LM Link raises :class:`LMStudioProtocolError`. ``timeout``
        (seconds) replaces ``Timeouts.rpc``.
        """
        async with operation_timeout(timeout, "client.repository.lm_link.status()"):
            connection = await self._source._connection("repository")
            raw = await connection.call("lmLinkStatus")
        return decode_result(raw, LMLinkStatus, "lmLinkStatus")

    async def set_preferred_device(self, device_identifier: str) -> None:
        """Load models on this device when a call names none (an identifier from
        :meth:`status`). LM Studio rejects an unknown device with :class:`LMStudioServerError`."""
        _check_text(device_identifier, "device_identifier")
        await self._call("lmLinkSetPreferredDevice", {"deviceIdentifier": device_identifier})

    async def set_disabled(self, disabled: bool) -> None:
        """Switch LM Link off (``True``) or back on (``False``) for this machine."""
        if not isinstance(disabled, bool):
            raise LMStudioUsageError(f"set_disabled() takes True or False, got {disabled!r}.")
        await self._call("lmLinkSetDisabled", {"disabled": disabled})

    async def update_device_name(self, device_name: str) -> None:
        """Rename this machine as the other LM Link devices see it."""
        _check_text(device_name, "device_name")
        await self._call("lmLinkUpdateDeviceName", {"deviceName": device_name})

    async def _call(self, endpoint: str, parameter: dict[str, Any]) -> None:
        connection = await self._source._connection("repository")
        await connection.call(endpoint, parameter)


def _check_text(value: object, name: str) -> None:
    if not isinstance(value, str) or not value:
        raise LMStudioUsageError(f"{name} must be a non-empty str, got {value!r}.")


class RepositoryNamespace:
    """``client.repository``: search for models and download them; ``lm_link``."""

    def __init__(self, source: ConnectionSource) -> None:
        self._source = source
        self.lm_link = LMLinkNamespace(source)
        """The devices linked through LM Link: ``await client.repository.lm_link.status()``."""

    def __repr__(self) -> str:
        return "<RepositoryNamespace>"

    async def search_models(
        self,
        query: str,
        *,
        limit: int | None = None,
        compatibility_types: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> list[ModelSearchResultEntry]:
        """Models LM Studio can download that match ``query``, best match first.

        ``limit`` caps the results (1 to 25); ``compatibility_types`` keeps only models in
        those formats (e.g. ``["gguf"]``). Each result's ``get_download_options()`` lists its
        files. ``timeout`` (seconds) replaces ``Timeouts.rpc``.
        """
        if not isinstance(query, str):
            raise LMStudioUsageError(f"search_models() takes a str query, got {query!r}.")
        opts: dict[str, Any] = {"searchTerm": query}
        if limit is not None:
            if (
                isinstance(limit, bool)
                or not isinstance(limit, int)
                or not 1 <= limit <= _MAX_SEARCH_RESULTS
            ):
                raise LMStudioUsageError(
                    f"limit must be an int from 1 to {_MAX_SEARCH_RESULTS} (LM Studio's maximum), "
                    f"got {limit!r}."
                )
            opts["limit"] = limit
        if compatibility_types is not None:
            if isinstance(compatibility_types, str) or not all(
                t in _COMPATIBILITY_TYPES for t in compatibility_types
            ):
                raise LMStudioUsageError(
                    f"compatibility_types must be a list of model formats LM Studio knows "
                    f"({', '.join(_COMPATIBILITY_TYPES)}), got {compatibility_types!r}."
                )
            opts["compatibilityTypes"] = list(compatibility_types)
        async with operation_timeout(timeout, "client.repository.search_models()"):
            connection = await self._source._connection("repository")
            raw = await connection.call("searchModels", {"opts": opts})
        results = decode_result(raw, SearchResults, "searchModels").results
        return [ModelSearchResultEntry(self._source, result) for result in results]

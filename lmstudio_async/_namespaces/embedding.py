from __future__ import annotations

from collections.abc import Mapping
from typing import Any, overload

import msgspec

from .. import _telemetry
from .._errors import LMStudioUsageError
from .._timeouts import operation_timeout
from ..types.load_config import EmbeddingLoadConfig
from ..types.models import EmbeddingModelInstanceInfo
from ._base import ModelHandle, ModelNamespace, check_texts, decode_result
from ._loading import BatchProgressCallback, ProgressCallback, check_max_concurrency, map_bounded

__all__ = ["EmbeddingModel", "EmbeddingNamespace"]


class _Embedding(msgspec.Struct):
    embedding: list[float]


class EmbeddingModel(ModelHandle[EmbeddingModelInstanceInfo]):
    """A loaded embedding model: ``embed`` texts, ``tokenize``, ``count_tokens``, ``unload``."""

    _namespace_name = "embedding"

    @overload
    async def embed(self, text: str, *, timeout: float | None = None) -> list[float]: ...
    @overload
    async def embed(
        self,
        text: list[str] | tuple[str, ...],
        *,
        max_concurrency: int = 16,
        progress: BatchProgressCallback | None = None,
        timeout: float | None = None,
    ) -> list[list[float]]: ...
    async def embed(
        self,
        text: str | list[str] | tuple[str, ...],
        *,
        max_concurrency: int = 16,
        progress: BatchProgressCallback | None = None,
        timeout: float | None = None,
    ) -> list[float] | list[list[float]]:
        """The embedding vector of one text, or one vector per text of a list, in input order.

        LM Studio embeds one string per request; a list sends at most ``max_concurrency``
        requests at a time and calls ``progress(done, total)`` (plain or ``async``) after each
        text. An empty list raises :class:`LMStudioUsageError`. The first failure cancels the
        rest of the batch and is raised. ``timeout`` (seconds) bounds the whole call, batch
        included, replacing ``Timeouts.rpc``.
        """
        with _telemetry.operation("embeddings", self.identifier, self._source):
            async with operation_timeout(timeout, "embed()"):
                return await self._embed(text, max_concurrency, progress)

    async def _embed(
        self,
        text: str | list[str] | tuple[str, ...],
        max_concurrency: int,
        progress: BatchProgressCallback | None,
    ) -> list[float] | list[list[float]]:
        limit = check_max_concurrency(max_concurrency)
        if isinstance(text, str):
            if progress is not None:
                raise LMStudioUsageError(
                    "progress applies to lists of texts only: embed([...], progress=...)."
                )
            return await self._embed_one(text)
        texts = check_texts(text, "embed")
        return await map_bounded(self._embed_one, texts, max_concurrency=limit, on_done=progress)

    async def _embed_one(self, text: str) -> list[float]:
        raw = await self._call(
            "embedString", {"modelSpecifier": self._specifier, "inputString": text}
        )
        return decode_result(raw, _Embedding, "embedString").embedding


class EmbeddingNamespace(ModelNamespace[EmbeddingModelInstanceInfo]):
    """``client.embedding``: get, load, list, unload and use embedding models."""

    _name = "embedding"
    _info_type = EmbeddingModelInstanceInfo
    _load_config_type = EmbeddingLoadConfig

    async def model(
        self,
        model_key: str | None = None,
        *,
        ttl: float | None = None,
        config: EmbeddingLoadConfig | Mapping[str, Any] | None = None,
        on_load_progress: ProgressCallback | None = None,
        device_identifier: str | None = None,
        timeout: float | None = None,
    ) -> EmbeddingModel:
        """A handle to a loaded embedding model.

        With a key: the model loaded under that identifier, loading it first if needed
        (``ttl`` seconds of idleness before LM Studio unloads it, load ``config``,
        ``on_load_progress`` from 0.0 to 1.0). Without: any embedding model that is loaded.
        ``device_identifier`` picks the LM Link device (see
        ``client.repository.lm_link.status()``) to look for, or load, the model on; by default
        LM Studio chooses. ``timeout`` (seconds) bounds the whole call; when it passes, a load in
        progress is cancelled and :class:`LMStudioTimeoutError` is raised.
        """
        async with operation_timeout(timeout, "client.embedding.model()"):
            info = await self._model_info(
                model_key, ttl, config, on_load_progress, device_identifier
            )
        return EmbeddingModel(self._source, info)

    async def load(
        self,
        model_key: str,
        *,
        identifier: str | None = None,
        ttl: float | None = None,
        config: EmbeddingLoadConfig | Mapping[str, Any] | None = None,
        on_progress: ProgressCallback | None = None,
        device_identifier: str | None = None,
    ) -> EmbeddingModel:
        """Load a new instance of a downloaded embedding model and return its handle.

        ``identifier`` names the instance (it must not be in use; by default LM Studio derives
        one from the key), ``ttl`` is the idle time in seconds before LM Studio unloads it,
        ``config`` the load options, ``on_progress`` gets floats rising to 1.0. Cancelling the
        awaiting task cancels the load in LM Studio. ``device_identifier`` is the LM Link
        device to load it on.
        """
        info = await self._load_info(
            model_key,
            identifier=identifier,
            ttl=ttl,
            config=config,
            on_progress=on_progress,
            device_identifier=device_identifier,
        )
        return EmbeddingModel(self._source, info)

    async def list_loaded(self, *, timeout: float | None = None) -> list[EmbeddingModel]:
        """Handles to every embedding model currently loaded (``timeout`` in seconds replaces
        ``Timeouts.rpc``)."""
        async with operation_timeout(timeout, "client.embedding.list_loaded()"):
            infos = await self._list_loaded_infos()
        return [EmbeddingModel(self._source, info) for info in infos]

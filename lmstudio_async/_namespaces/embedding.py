from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from .._errors import LMStudioUsageError
from ..types.load_config import EmbeddingLoadConfig
from ..types.models import EmbeddingModelInstanceInfo
from ._base import ModelHandle, ModelNamespace, ProgressCallback, decode_result

__all__ = ["EmbeddingModel", "EmbeddingNamespace"]


class _Embedding(msgspec.Struct):
    embedding: list[float]


class EmbeddingModel(ModelHandle[EmbeddingModelInstanceInfo]):
    """A loaded embedding model."""

    _namespace_name = "embedding"

    async def embed(self, text: str) -> list[float]:
        """The embedding vector of one text."""
        if not isinstance(text, str):
            raise LMStudioUsageError(f"embed() takes a string, got {type(text).__name__}.")
        raw = await self._call(
            "embedString", {"modelSpecifier": self._specifier, "inputString": text}
        )
        return decode_result(raw, _Embedding, "embedString").embedding


class EmbeddingNamespace(ModelNamespace[EmbeddingModelInstanceInfo]):
    """``client.embedding``: get, list and use embedding models."""

    _name = "embedding"
    _info_type = EmbeddingModelInstanceInfo

    async def model(
        self,
        model_key: str | None = None,
        *,
        ttl: float | None = None,
        config: EmbeddingLoadConfig | Mapping[str, Any] | None = None,
        on_load_progress: ProgressCallback | None = None,
    ) -> EmbeddingModel:
        """A handle to a loaded embedding model (loading it first if needed)."""
        if model_key is None:
            return EmbeddingModel(self._source, await self._any_loaded_info())
        load_fields = EmbeddingLoadConfig.from_value(config).to_kv_fields()
        info = await self._get_or_load_info(
            model_key, ttl=ttl, load_fields=load_fields, on_load_progress=on_load_progress
        )
        return EmbeddingModel(self._source, info)

    async def list_loaded(self) -> list[EmbeddingModel]:
        """Handles to every embedding model currently loaded."""
        return [EmbeddingModel(self._source, info) for info in await self._list_loaded_infos()]

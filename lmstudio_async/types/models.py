"""Model information: downloaded models (``ModelInfo``) and loaded ones (``ModelInstanceInfo``).

Attributes are snake_case; the wire uses camelCase. Fields added after the release-54 schema
(PROTOCOL.md §6 item 16) are optional so older servers decode cleanly; unknown fields from newer
servers are ignored.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "EmbeddingModelInfo",
    "EmbeddingModelInstanceInfo",
    "LLMInfo",
    "LLMInstanceInfo",
    "ModelFormat",
    "ModelInfo",
    "ModelInstanceInfo",
    "Quantization",
]

ModelFormat = Literal[
    "gguf", "safetensors", "onnx", "ggml", "pte", "mlx_placeholder", "torch_safetensors"
]
"""Model file formats known at the time of writing (``format`` is kept as ``str`` to stay open)."""


class Quantization(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    """A model's quantization, e.g. ``Quantization(name="Q4_K_M", bits=4)``."""

    name: str
    bits: int


class _ModelInfoBase(
    msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True, tag_field="type"
):
    """Fields shared by every model description (``ModelInfoBase``)."""

    model_key: str
    format: str
    display_name: str
    path: str
    size_bytes: int
    publisher: str | None = None
    indexed_model_identifier: str | None = None
    device_identifier: str | None = None
    params_string: str | None = None
    architecture: str | None = None
    quantization: Quantization | None = None
    variants: list[str] | None = None
    selected_variant: str | None = None


class LLMInfo(_ModelInfoBase, tag="llm", kw_only=True):
    """A downloaded LLM."""

    max_context_length: int
    vision: bool = False
    trained_for_tool_use: bool = False


class EmbeddingModelInfo(_ModelInfoBase, tag="embedding", kw_only=True):
    """A downloaded embedding model."""

    max_context_length: int


class LLMInstanceInfo(LLMInfo, tag="llm", kw_only=True):
    """A loaded LLM instance (``identifier`` is what predictions address)."""

    identifier: str
    instance_reference: str
    context_length: int
    ttl_ms: int | None = None
    last_used_time: float | None = None


class EmbeddingModelInstanceInfo(EmbeddingModelInfo, tag="embedding", kw_only=True):
    """A loaded embedding model instance."""

    identifier: str
    instance_reference: str
    context_length: int
    ttl_ms: int | None = None
    last_used_time: float | None = None


ModelInfo = LLMInfo | EmbeddingModelInfo
"""A downloaded model of either kind (tagged on ``type``)."""

ModelInstanceInfo = LLMInstanceInfo | EmbeddingModelInstanceInfo
"""A loaded model instance of either kind (tagged on ``type``)."""

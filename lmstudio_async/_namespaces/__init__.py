"""Typed methods of each LM Studio namespace (``llm``, ``embedding``, ``system``)."""

from ._base import ConnectionSource
from .embedding import EmbeddingModel, EmbeddingNamespace
from .llm import LLM, LLMNamespace
from .system import SystemNamespace

__all__ = [
    "LLM",
    "ConnectionSource",
    "EmbeddingModel",
    "EmbeddingNamespace",
    "LLMNamespace",
    "SystemNamespace",
]

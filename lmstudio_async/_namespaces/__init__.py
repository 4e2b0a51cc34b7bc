"""Typed methods of each LM Studio namespace (``llm``, ``embedding``, ``system``, ``files``)."""

from ._base import ConnectionSource
from .embedding import EmbeddingModel, EmbeddingNamespace
from .files import FilesNamespace
from .llm import LLM, LLMNamespace
from .system import SystemNamespace

__all__ = [
    "LLM",
    "ConnectionSource",
    "EmbeddingModel",
    "EmbeddingNamespace",
    "FilesNamespace",
    "LLMNamespace",
    "SystemNamespace",
]

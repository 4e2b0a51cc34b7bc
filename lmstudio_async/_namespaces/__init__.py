"""Typed methods of each LM Studio namespace (``llm``, ``embedding``, ``system``, ``files``,
``repository``)."""

from ._base import ConnectionSource
from .embedding import EmbeddingModel, EmbeddingNamespace
from .files import FilesNamespace
from .llm import LLM, LLMNamespace
from .repository import (
    LMLinkNamespace,
    ModelSearchResultDownloadOption,
    ModelSearchResultEntry,
    RepositoryNamespace,
)
from .system import SystemNamespace

__all__ = [
    "ConnectionSource",
    "EmbeddingModel",
    "EmbeddingNamespace",
    "FilesNamespace",
    "LLM",
    "LLMNamespace",
    "LMLinkNamespace",
    "ModelSearchResultDownloadOption",
    "ModelSearchResultEntry",
    "RepositoryNamespace",
    "SystemNamespace",
]

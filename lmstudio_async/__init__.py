"""lmstudio_async: an asyncio-native Python SDK for LM Studio."""

from ._version import __version__

__all__ = ["__version__"]

"""A pipe of text frames: ``websocket`` (aiohttp) and ``memory`` (an in-memory pair for tests).

Both are imported explicitly where needed, not here: aiohttp is slow to import and the memory
pipe is for tests. Nothing above this package sees aiohttp; its exceptions become
:class:`TransportClosed` or :class:`~lmstudio_async.LMStudioConnectionError` here.
"""

from ._base import Transport, TransportClosed

__all__ = ["Transport", "TransportClosed"]

"""A pipe of text frames: the aiohttp websocket, and an in-memory pair for tests.

Nothing above this package sees aiohttp; its exceptions become :class:`TransportClosed`
or :class:`~lmstudio_async.LMStudioConnectionError` here.
"""

from ._base import Transport, TransportClosed
from ._memory import MemoryTransport, memory_transport_pair

__all__ = ["MemoryTransport", "Transport", "TransportClosed", "memory_transport_pair"]

from __future__ import annotations

import math

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from ._base import TransportClosed

__all__ = ["MemoryTransport", "memory_transport_pair"]


class MemoryTransport:
    """One end of an in-memory frame pipe, for multiplexer tests without sockets."""

    def __init__(
        self, send: ObjectSendStream[str | bytes], receive: ObjectReceiveStream[str | bytes]
    ) -> None:
        self._send = send
        self._receive = receive

    async def send(self, frame: bytes) -> None:
        try:
            await self._send.send(frame)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise TransportClosed("the peer closed the in-memory pipe") from exc

    async def receive(self) -> str | bytes:
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError) as exc:
            raise TransportClosed("the peer closed the in-memory pipe") from exc

    async def aclose(self) -> None:
        await self._send.aclose()
        await self._receive.aclose()


def memory_transport_pair() -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected ends: what one sends, the other receives."""
    a_send, b_receive = anyio.create_memory_object_stream[str | bytes](math.inf)
    b_send, a_receive = anyio.create_memory_object_stream[str | bytes](math.inf)
    return MemoryTransport(a_send, a_receive), MemoryTransport(b_send, b_receive)

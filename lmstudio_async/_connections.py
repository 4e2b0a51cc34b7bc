"""The client's connections: one lazily opened, authenticated socket per namespace."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from ._discovery import BaseUrl, configured_base_url, discover
from ._errors import LMStudioClientClosedError, LMStudioConnectionError
from ._mux import Connection
from ._protocol.auth import Credentials
from ._transport import Transport

if TYPE_CHECKING:
    import aiohttp

__all__ = ["ConnectionPool"]


class ConnectionPool:
    """Hands out the live connection of a namespace, opening (or reopening) it on demand.

    Connections run as tasks of the client's task group; concurrent first calls on a namespace
    share one connection attempt.
    """

    def __init__(
        self,
        *,
        base_url: str | None,
        credentials: Credentials,
        auth_timeout: float,
        probe_timeout: float,
    ) -> None:
        # Validate eagerly so a malformed base_url fails at construction, not at first use.
        self._configured = configured_base_url(base_url)
        self._resolved: BaseUrl | None = self._configured
        self._credentials = credentials
        self._auth_timeout = auth_timeout
        self._probe_timeout = probe_timeout
        self._connections: dict[str, Connection] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._finished: dict[Connection, anyio.Event] = {}
        self._task_group: TaskGroup | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    @property
    def base_url(self) -> BaseUrl | None:
        return self._resolved

    def open(self, task_group: TaskGroup, session: aiohttp.ClientSession) -> None:
        self._task_group = task_group
        self._session = session

    def open_channel_count(self) -> int:
        return sum(c.open_channel_count for c in self._connections.values() if c.alive)

    def pending_call_count(self) -> int:
        return sum(c.pending_call_count for c in self._connections.values() if c.alive)

    async def connection(self, namespace: str) -> Connection:
        existing = self._connections.get(namespace)
        if existing is not None and existing.alive:
            return existing
        lock = self._locks.get(namespace)
        if lock is None:
            lock = self._locks[namespace] = asyncio.Lock()
        async with lock:
            existing = self._connections.get(namespace)
            if existing is not None and existing.alive:
                return existing
            return await self._open(namespace)

    async def _open(self, namespace: str) -> Connection:
        if self._closed or self._task_group is None or self._session is None:
            raise LMStudioClientClosedError(
                "This LMStudioClient is closed; create a new one to talk to LM Studio again."
            )
        base = await self._base_url()
        connection = Connection(
            namespace=namespace,
            url=base.namespace_url(namespace),
            credentials=self._credentials,
            transport_factory=self._connect_transport,
            auth_timeout=self._auth_timeout,
        )
        finished = anyio.Event()
        self._finished[connection] = finished

        async def supervise(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            try:
                await connection.run(task_status=task_status)
            finally:
                finished.set()
                self._finished.pop(connection, None)

        await self._task_group.start(supervise)
        self._connections[namespace] = connection
        return connection

    async def _base_url(self) -> BaseUrl:
        if self._resolved is None:
            assert self._session is not None
            self._resolved = await discover(self._session, self._probe_timeout)
        return self._resolved

    async def _connect_transport(self, url: str) -> Transport:
        from ._transport.websocket import WebSocketTransport

        assert self._session is not None
        return await WebSocketTransport.connect(self._session, url)

    async def aclose(self) -> None:
        """Close every connection and wait until each has released its socket."""
        self._closed = True
        reason = LMStudioClientClosedError(
            "The LMStudioClient was closed while this operation was running."
        )
        for connection in list(self._connections.values()):
            connection.close(_as_connection_error(reason))
        self._connections.clear()
        with anyio.CancelScope(shield=True), anyio.move_on_after(5.0):
            for finished in list(self._finished.values()):
                await finished.wait()


class _ClosedByClient(LMStudioConnectionError, LMStudioClientClosedError):
    """In-flight work at client shutdown: both a connection loss and a closed client."""


def _as_connection_error(reason: LMStudioClientClosedError) -> LMStudioConnectionError:
    return _ClosedByClient(str(reason))

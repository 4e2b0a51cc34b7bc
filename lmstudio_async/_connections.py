"""The client's connections: one lazily opened, authenticated socket per namespace."""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from ._discovery import BaseUrl, configured_base_url, discover
from ._errors import LMStudioClientClosedError
from ._mux import Connection
from ._protocol.auth import Credentials
from ._timeouts import Timeouts
from ._transport import Transport

if TYPE_CHECKING:
    import aiohttp

__all__ = ["ConnectionHook", "ConnectionPool", "ReconnectBackoff"]

logger = logging.getLogger("lmstudio_async")

ConnectionHook = Callable[[str], Awaitable[Any] | Any]
"""``on_disconnect`` / ``on_reconnect``: called with the namespace name, plain or ``async``."""


class ReconnectBackoff:
    """Spaces out connection attempts after failures, so a dead server is not hammered.

    After the n-th consecutive failure the next attempt waits until ``base * 2**(n-1)``
    seconds (capped at ``cap``), scaled by a random factor in [0.5, 1], have passed since that
    failure: time the caller spent elsewhere counts, and after a success nothing waits at all.
    """

    __slots__ = ("_base", "_cap", "_clock", "_failures", "_not_before", "_random")

    def __init__(
        self,
        *,
        base: float = 0.1,
        cap: float = 5.0,
        clock: Callable[[], float] = anyio.current_time,
        rng: random.Random | None = None,
    ) -> None:
        self._base = base
        self._cap = cap
        # The clock and random source are parameters so tests can check the schedule exactly.
        self._clock = clock
        self._failures = 0
        self._not_before = 0.0
        self._random = rng if rng is not None else random.Random()

    @property
    def failures(self) -> int:
        return self._failures

    def delay(self) -> float:
        """Seconds the next attempt has to wait from now (0 after a success)."""
        if self._failures == 0:
            return 0.0
        return max(0.0, self._not_before - self._clock())

    def failed(self) -> None:
        self._failures += 1
        step = min(self._cap, self._base * 2 ** min(self._failures - 1, 32))
        self._not_before = self._clock() + step * self._random.uniform(0.5, 1.0)

    def succeeded(self) -> None:
        self._failures = 0
        self._not_before = 0.0


class ConnectionPool:
    """Hands out the live connection of a namespace, opening (or reopening) it on demand.

    The pool owns its background work as an object does: each connection's socket task and
    each running user hook is kept here and cancelled and awaited by :meth:`aclose`, whichever
    task opens or closes the client. Concurrent calls on a namespace share one connection
    attempt: its connection when it succeeds, its error when it fails.
    """

    def __init__(
        self,
        *,
        base_url: str | None,
        credentials: Credentials,
        timeouts: Timeouts,
        probe_timeout: float,
        max_concurrent_predictions: int | None = None,
        on_disconnect: ConnectionHook | None = None,
        on_reconnect: ConnectionHook | None = None,
    ) -> None:
        # Validate eagerly so a malformed base_url fails at construction, not at first use.
        self._configured = configured_base_url(base_url)
        self._resolved: BaseUrl | None = self._configured
        self._credentials = credentials
        self._timeouts = timeouts
        self._probe_timeout = probe_timeout
        # anyio's CapacityLimiter serves waiters first come, first served.
        self._prediction_limiter = (
            None
            if max_concurrent_predictions is None
            else anyio.CapacityLimiter(max_concurrent_predictions)
        )
        self._on_disconnect = on_disconnect
        self._on_reconnect = on_reconnect
        self._backoff = ReconnectBackoff()
        self._ever_connected: set[str] = set()
        self._connections: dict[str, Connection] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Per namespace, the latest failed connection attempt: (a serial number, its error).
        self._last_failure: dict[str, tuple[int, Exception]] = {}
        self._failure_serial = 0
        # Attempts still connecting or authenticating: closing the client cancels them.
        self._opening: set[anyio.CancelScope] = set()
        self._finished: dict[Connection, anyio.Event] = {}
        # Background tasks: one per connection (its socket), one per running user hook.
        self._connection_tasks: set[asyncio.Task[None]] = set()
        self._hook_tasks: set[asyncio.Task[None]] = set()
        self._closing: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    @property
    def base_url(self) -> BaseUrl | None:
        return self._resolved

    @property
    def timeouts(self) -> Timeouts:
        return self._timeouts

    def open(self, session: aiohttp.ClientSession) -> None:
        """Start serving; the pool owns ``session`` from now on and closes it in ``aclose``."""
        self._session = session

    def open_channel_count(self) -> int:
        return sum(c.open_channel_count for c in self._connections.values() if c.alive)

    def pending_call_count(self) -> int:
        return sum(c.pending_call_count for c in self._connections.values() if c.alive)

    async def connection(self, namespace: str) -> Connection:
        existing = self._connections.get(namespace)
        if existing is not None and existing.alive and not existing.retired:
            return existing
        lock = self._locks.get(namespace)
        if lock is None:
            lock = self._locks[namespace] = asyncio.Lock()
        failed_before = self._last_failure.get(namespace, (0, None))[0]
        async with lock:
            existing = self._connections.get(namespace)
            if existing is not None and existing.alive and not existing.retired:
                return existing
            failed = self._last_failure.get(namespace)
            if failed is not None and failed[0] > failed_before:
                # An attempt failed while this call waited for it: the server is not there,
                # and trying again at once (after a backoff each) would only delay every
                # queued call's error.
                raise _shared(failed[1])
            try:
                return await self._open(namespace)
            except Exception as exc:
                self._failure_serial += 1
                self._last_failure[namespace] = (self._failure_serial, exc)
                raise

    async def _open(self, namespace: str) -> Connection:
        if self._closed or self._session is None:
            raise LMStudioClientClosedError(
                "This LMStudioClient is closed; create a new one to talk to LM Studio again."
            )
        connection: Connection | None = None
        with anyio.CancelScope() as opening:
            # Closing the client cancels an attempt still waiting out its backoff, looking for
            # LM Studio, connecting or authenticating: nothing keeps the close waiting.
            self._opening.add(opening)
            try:
                connection = await self._connect(namespace)
            finally:
                self._opening.discard(opening)
        if self._closed or connection is None:
            if connection is not None:  # it connected just as the client closed
                connection.close(LMStudioClientClosedError("The LMStudioClient was closed."))
            raise LMStudioClientClosedError(
                "This LMStudioClient was closed while this call was connecting to LM Studio."
            )
        self._backoff.succeeded()
        self._last_failure.pop(namespace, None)  # don't keep an old error's traceback alive
        previous = self._connections.get(namespace)
        self._connections[namespace] = connection
        # A socket retired for its warning budget is replaced without the user noticing.
        if namespace in self._ever_connected and not (previous is not None and previous.retired):
            logger.debug("%s: reconnected", namespace)
            self._fire(self._on_reconnect, namespace)
        self._ever_connected.add(namespace)
        return connection

    async def _connect(self, namespace: str) -> Connection:
        """Wait out the backoff, find LM Studio, then connect and authenticate a socket."""
        delay = self._backoff.delay()
        if delay > 0:
            # Earlier attempts failed just now: don't hammer a server that is down.
            logger.debug("%s: waiting %.2f s before connecting again", namespace, delay)
            await anyio.sleep(delay)
        try:
            base = await self._base_url()
        except Exception:
            self._backoff.failed()
            raise
        logger.debug("%s: connecting to %s", namespace, base.namespace_url(namespace))
        connection = Connection(
            namespace=namespace,
            url=base.namespace_url(namespace),
            credentials=self._credentials,
            transport_factory=self._connect_transport,
            timeouts=self._timeouts,
            prediction_limiter=self._prediction_limiter,
        )
        finished = anyio.Event()
        self._finished[connection] = finished
        loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = loop.create_future()
        task = loop.create_task(
            self._serve(connection, namespace, started, finished),
            name=f"lmstudio_async {namespace} connection",
        )
        self._keep(self._connection_tasks, task)

        def forget(_: object) -> None:
            # Also for a task cancelled before its first step, which never ran _serve.
            finished.set()
            self._finished.pop(connection, None)

        task.add_done_callback(forget)
        try:
            await started
        except BaseException as exc:
            # The attempt failed, or this caller gave up (cancelled, or the client closing):
            # the half-open socket must not outlive the attempt.
            task.cancel()
            if isinstance(exc, Exception):
                self._backoff.failed()
            raise
        return connection

    async def _serve(
        self,
        connection: Connection,
        namespace: str,
        started: asyncio.Future[None],
        finished: anyio.Event,
    ) -> None:
        """A connection's whole life, as a task the pool owns; reports to ``started``."""
        try:
            await connection.run(task_status=_Started(started))
        except Exception as exc:
            # run() only raises before it reported started (it could not connect or
            # authenticate): that is the starting call's error.
            if not started.done():
                started.set_exception(exc)
            else:  # pragma: no cover - run() handles everything once started
                logger.exception("A connection to LM Studio ended with an error")
        except BaseException:
            if not started.done():
                started.cancel()
            raise
        finally:
            finished.set()
            self._finished.pop(connection, None)
            if connection.authenticated and not self._closed and not connection.retired:
                self._fire(self._on_disconnect, namespace)

    @staticmethod
    def _keep(tasks: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _fire(self, hook: ConnectionHook | None, namespace: str) -> None:
        """Run a user hook in the background; its failure is logged, never propagated."""
        if hook is None or self._closed:
            return

        async def run() -> None:
            try:
                outcome = hook(namespace)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                logger.exception("The %s hook raised for namespace %r", hook, namespace)

        task = asyncio.get_running_loop().create_task(run(), name=f"lmstudio_async {hook!r}")
        self._keep(self._hook_tasks, task)

    async def _base_url(self) -> BaseUrl:
        if self._resolved is None:
            assert self._session is not None
            self._resolved = await discover(self._session, self._probe_timeout)
        return self._resolved

    async def _connect_transport(self, url: str) -> Transport:
        from ._transport.websocket import WebSocketTransport

        assert self._session is not None
        return await WebSocketTransport.connect(
            self._session, url, heartbeat=self._timeouts.heartbeat
        )

    async def aclose(self) -> None:
        """Close every connection and wait until each has released its socket.

        Bounded: sockets get 5 s to close, user hooks are cancelled and get 1 s to unwind, so
        a hook that sleeps or never returns cannot hold the close up.
        """
        self._closed = True
        for opening in list(self._opening):
            opening.cancel()
        reason = LMStudioClientClosedError(
            "The LMStudioClient was closed while this operation was running."
        )
        for connection in list(self._connections.values()):
            connection.close(reason)
        self._connections.clear()
        for hook in self._hook_tasks:
            hook.cancel()
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(5.0):
                for finished in list(self._finished.values()):
                    await finished.wait()
            for task in self._connection_tasks:
                task.cancel()  # still connecting (their callers gave up), or past the bound
            await _wait_bounded(self._connection_tasks, 1.0)
            await _wait_bounded(self._hook_tasks, 1.0)
            if self._hook_tasks:
                logger.warning(
                    "%d on_disconnect/on_reconnect hook(s) ignored cancellation; the client "
                    "closed without waiting for them",
                    len(self._hook_tasks),
                )
            session, self._session = self._session, None
            if session is not None:
                await session.close()

    def close_from_finalizer(self, loop: asyncio.AbstractEventLoop) -> None:
        """The client was collected open: close in its loop (from any thread), or at least
        detach the HTTP session when that loop is gone, so only the client's warning shows."""

        def start_closing() -> None:
            if self._closing is None:
                self._closing = loop.create_task(self.aclose())

        try:
            loop.call_soon_threadsafe(start_closing)
        except RuntimeError:  # the loop is closed: its sockets are gone already
            if self._session is not None:
                self._session.detach()


async def _wait_bounded(tasks: set[asyncio.Task[None]], seconds: float) -> None:
    if tasks:
        await asyncio.wait(set(tasks), timeout=seconds)


class _Started:
    """The ``task_status`` handed to :meth:`Connection.run`: completes a future."""

    __slots__ = ("_future",)

    def __init__(self, future: asyncio.Future[None]) -> None:
        self._future = future

    def started(self, value: None = None) -> None:
        if not self._future.done():
            self._future.set_result(None)


def _shared(error: Exception) -> Exception:
    """A copy of another call's error to raise here, so their tracebacks don't mix."""
    try:
        shared = copy.copy(error)
    except Exception:
        return error
    shared.__cause__ = error.__cause__
    return shared

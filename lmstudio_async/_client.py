"""``LMStudioClient``: lifecycle (unopened, open, closed), its connection pool, the namespaces."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import sys
import warnings
from types import TracebackType

import anyio

from . import _telemetry
from ._connections import ConnectionHook, ConnectionPool
from ._errors import LMStudioClientClosedError, LMStudioUsageError
from ._mux import Connection
from ._namespaces import (
    LLM,
    EmbeddingModel,
    EmbeddingNamespace,
    FilesNamespace,
    LLMNamespace,
    RepositoryNamespace,
    SystemNamespace,
)
from ._protocol.auth import resolve_credentials
from ._timeouts import DEFAULT_TIMEOUTS, Timeouts, check_timeout
from .types.models import ModelInfo

if sys.version_info >= (3, 11):
    from typing import Self
else:
    from typing_extensions import Self

__all__ = ["LMStudioClient"]


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class LMStudioClient:
    """An asyncio client for LM Studio.

    Use it as an async context manager::

        async with LMStudioClient() as client:
            model = await client.llm.model("qwen2.5-7b-instruct")
            print((await model.respond("Hello!")).content)

    or without one: the first call opens it, and ``await client.aclose()`` closes it. Opening
    and closing may happen in different tasks (pytest fixtures, ``AsyncExitStack``); the client
    owns its socket tasks itself. A client collected while still open emits a
    ``ResourceWarning`` naming it and is closed in its event loop. It needs asyncio (uvloop
    works); other event loops (trio) get :class:`LMStudioUsageError`.

    Where LM Studio is: ``base_url`` (``"host:port"``, ``"ws://host:port"`` or
    ``"http://host:port"``), else the ``LMSTUDIO_BASE_URL`` environment variable, else a parallel
    probe of LM Studio's well-known ports and 1234. Credentials: ``api_token`` (``sk-lm-...``),
    else ``LM_API_TOKEN`` / ``LMSTUDIO_API_TOKEN``, else a guest identity. Sockets open lazily,
    one per namespace, on first use; a dropped socket is reopened by the next call.

    Reliability options:

    * ``timeouts``: per-phase deadlines (:class:`Timeouts`; connect, auth, RPC, first fragment,
      gap between fragments). ``auth_timeout`` overrides ``timeouts.auth``. A deadline that
      passes raises :class:`LMStudioTimeoutError` and cancels the operation in LM Studio.
    * ``max_concurrent_predictions``: at most this many predictions run at once; further ones
      wait in a first-come-first-served queue instead of flooding the server.
    * ``on_disconnect(namespace)`` / ``on_reconnect(namespace)``: called (plain or ``async``)
      when a namespace's socket drops, and when a later call opens it again. Repeated failures
      to connect are spaced out (0.1 s doubling to 5 s, with jitter).
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_token: str | None = None,
        auth_timeout: float | None = None,
        probe_timeout: float = 1.0,
        timeouts: Timeouts | None = None,
        max_concurrent_predictions: int | None = None,
        on_disconnect: ConnectionHook | None = None,
        on_reconnect: ConnectionHook | None = None,
    ) -> None:
        self._credentials = resolve_credentials(api_token)
        _telemetry.autodetect()  # a program with a configured OpenTelemetry tracer gets spans
        if timeouts is None:
            timeouts = DEFAULT_TIMEOUTS
        elif not isinstance(timeouts, Timeouts):
            raise LMStudioUsageError(
                f"timeouts must be a lmstudio_async.Timeouts(...), got {type(timeouts).__name__}."
            )
        if auth_timeout is not None:
            timeouts = dataclasses.replace(
                timeouts, auth=check_timeout(auth_timeout, "auth_timeout")
            )
        if max_concurrent_predictions is not None and (
            isinstance(max_concurrent_predictions, bool)
            or not isinstance(max_concurrent_predictions, int)
            or max_concurrent_predictions < 1
        ):
            raise LMStudioUsageError(
                "max_concurrent_predictions must be a positive int or None (no limit), got "
                f"{max_concurrent_predictions!r}."
            )
        for name, hook in (("on_disconnect", on_disconnect), ("on_reconnect", on_reconnect)):
            if hook is not None and not callable(hook):
                raise LMStudioUsageError(
                    f"{name} must be a callable taking the namespace name, got {hook!r}."
                )
        self.timeouts = timeouts
        """The client's deadlines (read-only; pass ``timeouts=`` to change them)."""
        self._pool = ConnectionPool(
            base_url=base_url,
            credentials=self._credentials,
            timeouts=timeouts,
            probe_timeout=probe_timeout,
            max_concurrent_predictions=max_concurrent_predictions,
            on_disconnect=on_disconnect,
            on_reconnect=on_reconnect,
        )
        self._state = _State.UNOPENED
        self._loop: asyncio.AbstractEventLoop | None = None
        self.llm = LLMNamespace(self)
        """LLMs: ``model()``, ``list_loaded()``, and through handles ``respond``/``complete``."""
        self.embedding = EmbeddingNamespace(self)
        """Embedding models: ``model()``, ``list_loaded()``, ``embed``."""
        self.system = SystemNamespace(self)
        """Downloaded models and the app version."""
        self.files = FilesNamespace(self)
        """Images for vision models: ``prepare_image()``."""
        self.repository = RepositoryNamespace(self)
        """Model search and downloads (``search_models()``), and LM Link (``lm_link``)."""

    def __repr__(self) -> str:
        where = self._pool.base_url.ws if self._pool.base_url else "auto-discover"
        return f"<LMStudioClient {self._state.value} {where} {self._credentials!r}>"

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state is _State.CLOSED:
            raise LMStudioUsageError(
                "This LMStudioClient is closed; a client is opened once. Create a new "
                "LMStudioClient."
            )
        self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _open(self) -> None:
        """Open on first use: bind to the running asyncio loop (synchronous, never awaits)."""
        if self._state is _State.OPEN:
            self._check_loop()
            return
        if self._state is _State.CLOSED:
            raise LMStudioClientClosedError(
                "This LMStudioClient is closed; create a new one to talk to LM Studio again."
            )
        from ._transport.websocket import open_session

        self._loop = _running_asyncio_loop()
        self._pool.open(open_session())
        self._state = _State.OPEN

    def _check_loop(self) -> None:
        if _running_asyncio_loop() is not self._loop:
            raise LMStudioUsageError(
                "This LMStudioClient was opened in a different event loop; a client and "
                "everything obtained from it must be used in the loop that opened it. Create "
                "one client per event loop."
            )

    async def aclose(self) -> None:
        """Close every socket and stop the client's background tasks; in-flight operations
        fail with :class:`LMStudioClientClosedError`. Idempotent; any task may call it.

        Returns within a few seconds even if an ``on_disconnect``/``on_reconnect`` hook is
        still running: hooks are cancelled.
        """
        if self._state is _State.CLOSED:
            return
        was_open = self._state is _State.OPEN
        self._state = _State.CLOSED
        if not was_open:
            return
        with anyio.CancelScope(shield=True):
            await self._pool.aclose()

    def __del__(self) -> None:
        # Only warns and hands the close to the client's own loop: never closes from here.
        if getattr(self, "_state", None) is not _State.OPEN:
            return
        warnings.warn(
            f"Unclosed {self!r}: close it with `await client.aclose()` or use `async with "
            "LMStudioClient() as client:`.",
            ResourceWarning,
            stacklevel=1,
            source=self,
        )
        loop = self._loop
        if loop is not None:
            self._pool.close_from_finalizer(loop)

    # -- the ConnectionSource the namespaces use ----------------------------------------------

    async def _connection(self, namespace: str) -> Connection:
        """The live connection of a namespace (internal; used by the namespace objects)."""
        if self._state is not _State.OPEN:
            self._open()
        else:
            self._check_loop()
        return await self._pool.connection(namespace)

    # -- conveniences spanning namespaces -------------------------------------------------------

    async def list_downloaded_models(self) -> list[ModelInfo]:
        """Every model on disk, LLMs and embedding models alike (``client.system``'s list)."""
        return await self.system.list_downloaded_models()

    async def list_loaded_models(self) -> list[LLM | EmbeddingModel]:
        """Handles to every loaded model: the LLMs first, then the embedding models."""
        llms = await self.llm.list_loaded()
        embedding_models = await self.embedding.list_loaded()
        return [*llms, *embedding_models]

    def _open_channel_count(self) -> int:
        """Channels open on this client's live sockets (for tests and diagnostics)."""
        return self._pool.open_channel_count()


def _running_asyncio_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        # Under trio (even through anyio) there is no asyncio loop: say so instead of leaking
        # asyncio's bare "no running event loop".
        raise LMStudioUsageError(
            "lmstudio_async needs asyncio: no asyncio event loop is running here. Run it with "
            "asyncio.run(...) (uvloop works too); trio and other event loops are not supported."
        ) from None

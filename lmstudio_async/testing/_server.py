"""The simulator's HTTP/websocket front: aiohttp app, authentication, public API.

Authentication mirrors the app's ``AuthenticatedWsServer`` + ``FcfsAuthenticator``
(PROTOCOL.md §1.3): every frame before a valid auth packet is tried as one, invalid ones are
ignored, a timeout fails the socket, and a client identifier is bound to the first passkey
seen until its last socket closes.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import itertools
import logging
import re
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import aiohttp
import anyio
from aiohttp import web

from . import _envelope as env
from . import _openai
from ._catalog import ModelSpec, default_catalog
from ._connection import Connection, Namespace
from ._embedding import embedding_namespace
from ._faults import EndpointFault, Faults, check_seconds
from ._hub import Hub
from ._llm import llm_namespace
from ._repository import repository_namespace
from ._rules import Rule
from ._runtime import plugins_namespace, runtime_namespace
from ._scripting import PredictionRecord, Responder, ScriptedReply
from ._state import ServerState
from ._system import files_namespace, system_namespace

__all__ = ["Simulator", "serve"]

_log = logging.getLogger("lmstudio_async.testing")

_TOKEN_RE = re.compile(r"^sk-lm-([a-zA-Z0-9]{8}):([a-zA-Z0-9]{20})$")
_MAX_MESSAGE = 100 * 1024 * 1024  # the `ws` package default the app inherits
_NAMESPACES: dict[str, Callable[[], Namespace]] = {
    "llm": llm_namespace,
    "embedding": embedding_namespace,
    "system": system_namespace,
    "files": files_namespace,
    "repository": repository_namespace,
    "runtime": runtime_namespace,
    "plugins": plugins_namespace,
}

Frame = tuple[str, str, dict[str, Any]]


def _valid_auth(frame: Any) -> bool:
    return (
        isinstance(frame, dict)
        and frame.get("authVersion") == 1
        and isinstance(frame.get("clientIdentifier"), str)
        and isinstance(frame.get("clientPasskey"), str)
        and len(frame["clientIdentifier"]) <= 256
        and len(frame["clientPasskey"]) <= 256
    )


class Simulator:
    """A protocol-faithful LM Studio stand-in serving websockets on a loopback port.

    Use as ``async with Simulator() as sim:`` and point a client at ``sim.base_url`` (or
    ``api_host=f"{sim.host}:{sim.port}"`` for the official Python SDK). See the package
    docstring for scripting and fault injection. The same port serves LM Studio's
    OpenAI-compatible ``/v1/models`` and ``/v1/chat/completions``. ``firehose=True`` streams
    unscripted predictions as fast as the socket allows, for benchmarks (see ``_firehose``).
    ``tokens_per_second`` paces every reply that sets no pacing of its own (fragments per
    second; ``None``: as fast as possible). ``enforce_context_length`` applies the loaded
    context length and ``contextOverflowPolicy`` like LM Studio (``False``: prompts of any
    size fit). ``rules`` are installed as if passed to :meth:`add_rule` in order.
    ``catalog`` lists the downloaded models (default :func:`default_catalog`) and ``loaded``
    the keys loaded at start (default: the first LLM and the first embedding model);
    :func:`read_catalog` reads both from a JSON file.
    ``load_duration`` is how long a model load takes and ``embed_duration`` how long one
    ``embedString`` request takes (seconds); a model's processing state says
    ``computingEmbedding`` meanwhile, and ``processingPrompt`` during a scripted reply's
    ``time_to_first_token``.

    Models are named as in LM Studio (case-insensitively): an instance identifier, a model
    key, a whole path, or ``publisher/repo`` (the repo also without its ``-GGUF`` and
    quantization suffixes); the best match wins, and a mere character prefix names nothing.
    A load takes its identifier when it starts, so concurrent loads get ``key``, ``key:2``;
    a ``getOrLoad`` of a model being loaded waits for that load. TTL is idle time, counted
    from the end of a model's last request. Unloading a model (``unloadModel``, a
    just-in-time eviction) ends a prediction running on it with ``Model is unloaded.``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_token: str | None = None,
        catalog: Sequence[ModelSpec] | None = None,
        loaded: Sequence[str] | None = None,
        record_frames: bool = False,
        load_duration: float = 0.02,
        embed_duration: float = 0.0,
        version: str = "0.3.30",
        build: int = 2,
        auth_timeout: float = 10.0,
        firehose: bool = False,
        tokens_per_second: float | None = None,
        enforce_context_length: bool = True,
        rules: Sequence[Rule] = (),
    ) -> None:
        specs = list(default_catalog() if catalog is None else catalog)
        if loaded is None:
            loaded = [
                next(s.model_key for s in specs if s.type == kind)
                for kind in ("llm", "embedding")
                if any(s.type == kind for s in specs)
            ]
        self._token: tuple[str, str] | None = None
        if api_token is not None:
            match = _TOKEN_RE.match(api_token.strip())
            if match is None:
                raise ValueError("api_token must look like sk-lm-<8 alnum>:<20 alnum>")
            self._token = (match[1], match[2])
        self._state = ServerState(
            catalog=specs,
            loaded=loaded,
            load_duration=load_duration,
            embed_duration=embed_duration,
            version=version,
            build=build,
        )
        if tokens_per_second is not None and not tokens_per_second > 0:
            raise ValueError(f"tokens_per_second must be positive, not {tokens_per_second}")
        self._state.tokens_per_second = tokens_per_second
        self._state.enforce_context_length = enforce_context_length
        self._state.rules.extend(rules)
        self._bind = (host, port)
        self.host = host
        self.port = port
        self.auth_timeout = auth_timeout
        self._frames: list[Frame] | None = [] if record_frames else None
        self._ids = itertools.count(1)
        self._sockets: dict[int, Callable[[], None]] = {}
        self._connections: dict[int, Connection] = {}
        self._clients: dict[str, list[Any]] = {}  # identifier -> [passkey, socket count]
        self._runner: web.AppRunner | None = None
        self._firehose = firehose
        self._namespaces = dict(_NAMESPACES)
        if firehose:
            self._namespaces["llm"] = functools.partial(llm_namespace, firehose=True)

    def __repr__(self) -> str:
        return (
            f"<Simulator {self.base_url} connections={self.connection_count()} "
            f"open_channels={self.open_channel_count()} loaded={self.loaded_identifiers()}>"
        )

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving (idempotent callers should use ``async with``)."""
        app = web.Application()
        app.router.add_get("/lmstudio-greeting", self._greeting)
        app.router.add_get("/lms-status", self._status)
        _openai.add_routes(app, self._state, firehose=self._firehose)
        app.router.add_get("/{namespace}", self._websocket)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        # A deep accept queue: load tests and benchmarks open a thousand connections at once
        # (one per SSE stream for OpenAI-style clients), and the default of 128 makes the
        # kernel drop SYNs, turning into multi-second connect stalls on the client side.
        site = web.TCPSite(runner, self._bind[0], self._bind[1], backlog=4096)
        await site.start()
        self._runner = runner
        self.host, self.port = runner.addresses[0][:2]

    async def aclose(self) -> None:
        """Drop every connection and stop listening."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for abort in list(self._sockets.values()):
            abort()
        await runner.cleanup()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ---- public inspection and control ---------------------------------------------------

    @property
    def base_url(self) -> str:
        """``ws://host:port`` (namespace paths are appended by clients)."""
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        """``http://host:port`` (serves ``/lmstudio-greeting``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def faults(self) -> Faults:
        """Server-wide faults; mutate fields or assign a new :class:`Faults`."""
        return self._state.faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        self._state.faults = value

    @property
    def hub(self) -> Hub:
        """What ``/repository`` serves: downloadable models (``hub.models``), download pacing
        (``hub.download_seconds``) and records (``hub.downloads``), LM Link ``hub.devices``."""
        return self._state.hub

    @property
    def predictions(self) -> list[PredictionRecord]:
        """Every ``predict``/``completeRawText`` channel ever opened, in order."""
        return self._state.predictions

    def script(self, model: str, *replies: ScriptedReply) -> None:
        """Queue replies for predictions on ``model`` (an identifier or a model key)."""
        self._state.scripts.setdefault(model, deque()).extend(replies)

    def add_rule(
        self,
        reply: ScriptedReply | Responder,
        *,
        model: str | None = None,
        last_user_message: str | re.Pattern[str] | None = None,
        last_message_role: str | None = None,
        has_tools: bool | None = None,
        endpoint: str | None = None,
        times: int | None = None,
    ) -> Rule:
        """Answer the predictions that match with ``reply``; returns the installed :class:`Rule`.

        Rules are tried in the order added, before the per-model queue of :meth:`script`; the
        first one that matches answers (every given condition must hold). ``reply`` is a
        :class:`ScriptedReply`, or a callable (plain or ``async``) given the
        :class:`PredictionRequest` that returns one, or ``None`` to pass to the next rule.
        ``model`` is an identifier or model key; ``last_user_message`` a regular expression
        searched in the last user message (the raw prompt for completions);
        ``last_message_role`` e.g. ``"tool"`` for "right after a tool result"; ``has_tools``
        whether tools were offered; ``endpoint`` ``"predict"`` or ``"completeRawText"``;
        ``times`` answers at most that many predictions. Unmatched predictions fall through
        to the queue, then to the default model. Raises ``ValueError`` for a bad ``endpoint``
        or ``times``, ``re.error`` for a bad pattern.
        """
        pattern = (
            re.compile(last_user_message)
            if isinstance(last_user_message, str)
            else last_user_message
        )
        rule = Rule(
            reply=reply,
            model=model,
            last_user_message=pattern,
            last_message_role=last_message_role,
            has_tools=has_tools,
            endpoint=endpoint,
            times=times,
        )
        self._state.rules.append(rule)
        return rule

    @property
    def rules(self) -> list[Rule]:
        """The installed rules in matching order (remove one to uninstall it)."""
        return self._state.rules

    def fault_endpoint(
        self,
        endpoint: str,
        *,
        namespace: str | None = None,
        error: dict[str, Any] | None = None,
        raw_result: bytes | None = None,
        delay: float = 0.0,
        reject: bool = False,
        times: int | None = None,
        when: Callable[[Any], bool] | None = None,
    ) -> EndpointFault:
        """Make one endpoint misbehave while the others work; returns the :class:`EndpointFault`.

        ``endpoint`` is a wire name (``"getModelInfo"``, ``"predict"``...) and ``namespace``
        one of ``"llm"``, ``"embedding"``, ``"system"``, ``"files"``, ``"repository"``,
        ``"runtime"``, ``"plugins"`` (``None``: all). RPCs: ``error`` (see
        :func:`lmstudio_error`) fails the call with ``rpcError``; ``raw_result`` answers with
        those bytes as the result's JSON; ``delay`` (seconds) answers slowly; ``reject=True``
        answers with only an ``rpcParameterTypeError`` warning. Channels: ``error`` ends the
        channel with that ``channelError`` as soon as it is created (how LM Studio fails a
        prediction); ``reject=True`` answers ``channelCreate`` with only a
        ``channelCreationParameterTypeError`` warning. A rejection quotes the parameter as LM
        Studio does, and counts against the connection's five warnings. ``when`` picks the calls
        hit: a plain function given a copy of each call's ``creationParameter`` or ``parameter``
        as decoded JSON (``None`` if absent or ``null``) that returns ``True`` to misbehave,
        e.g. ``when=lambda p: "bad" in str(p)``. ``times`` limits how many calls are hit
        (``None``: all). For example ``sim.fault_endpoint("getModelInfo", error=
        lmstudio_error("Boom"), times=1)`` fails the next ``getModelInfo`` only.

        Raises ``ValueError`` for an unknown namespace or endpoint, an option the endpoint's
        kind cannot honour (``raw_result`` or ``delay`` on a channel: pace a prediction with
        ``ScriptedReply(time_to_first_token=...)`` instead), no misbehaviour at all, or a
        negative or infinite ``delay``; ``TypeError`` for a ``when`` that is not a plain
        function (an ``async def`` cannot be asked in time). Should ``when`` raise or return
        something awaitable, the call is not hit and the problem is logged on the
        ``lmstudio_async.testing`` logger.
        """
        check_seconds("delay", delay)
        if when is not None and (not callable(when) or inspect.iscoroutinefunction(when)):
            raise TypeError(
                "when must be a plain function given the request's parameter and returning "
                f"True to misbehave, not {when!r}"
            )
        if error is not None and raw_result is not None:
            raise ValueError("give error or raw_result, not both")
        if reject and (error is not None or raw_result is not None or delay):
            raise ValueError(
                "reject=True refuses the request; it cannot also carry error/raw_result/delay"
            )
        if error is None and raw_result is None and not delay and not reject:
            raise ValueError(
                "say how the endpoint misbehaves: error=, raw_result=, delay= or reject="
            )
        if isinstance(times, bool) or (times is not None and times < 1):
            raise ValueError(f"times must be a whole number, at least 1, not {times!r}")
        kinds = self._endpoint_kinds(endpoint, namespace)
        if (raw_result is not None or delay) and "channel" in kinds and "rpc" not in kinds:
            raise ValueError(
                f"{endpoint!r} is a channel: raw_result= and delay= apply to RPCs (use error= or "
                "reject=True; pace a prediction with ScriptedReply(time_to_first_token=...))"
            )
        fault = EndpointFault(
            endpoint=endpoint,
            namespace=namespace,
            error=error,
            raw_result=raw_result,
            delay=delay,
            reject=reject,
            times=times,
            when=when,
        )
        self._state.endpoint_faults.append(fault)
        return fault

    def _endpoint_kinds(self, endpoint: str, namespace: str | None) -> set[str]:
        """``{"rpc", "channel"}`` subset that ``endpoint`` is; ``ValueError`` if neither."""
        if namespace is not None and namespace not in self._namespaces:
            raise ValueError(
                f"unknown namespace {namespace!r}: use one of {', '.join(self._namespaces)} "
                "(lower case), or None for all"
            )
        names = [namespace] if namespace is not None else list(self._namespaces)
        kinds: set[str] = set()
        known: set[str] = set()
        for name in names:
            served = self._namespaces[name]()
            known.update(served.rpcs, served.channels)
            if endpoint in served.rpcs:
                kinds.add("rpc")
            if endpoint in served.channels:
                kinds.add("channel")
        if not kinds:
            close = difflib.get_close_matches(endpoint, sorted(known), n=3)
            where = f"the {namespace!r} namespace" if namespace is not None else "any namespace"
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise ValueError(
                f"{endpoint!r} is not an endpoint of {where}{hint}; use the wire name, "
                'e.g. "getModelInfo" or "predict"'
            )
        return kinds

    def loaded_identifiers(self) -> list[str]:
        """Identifiers of the loaded instances, in load order."""
        return [i.identifier for i in self._state.loaded()]

    def connection_count(self) -> int:
        """Live websocket connections (authenticated or not)."""
        return len(self._sockets)

    def open_channel_count(self) -> int:
        """Server-side channels currently open across all live connections."""
        return sum(len(c.channels) for c in self._connections.values())

    def frames_received(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Frames received (including auth packets), in arrival order."""
        return self._recorded("received", namespace)

    def frames_sent(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Frames sent (including auth replies; fault-injected garbage excluded)."""
        return self._recorded("sent", namespace)

    def _recorded(self, direction: str, namespace: str | None) -> list[dict[str, Any]]:
        if self._frames is None:
            raise RuntimeError("frame recording is off; create the Simulator(record_frames=True)")
        return [f for d, ns, f in self._frames if d == direction and namespace in (None, ns)]

    async def drop_connections(self) -> None:
        """Abruptly close every live websocket (LM Studio crash); keep listening."""
        for abort in list(self._sockets.values()):
            abort()
        await self.wait_for(lambda: not self._sockets, timeout=5.0)

    # A public test helper with its own deadline, hence the `timeout` parameter.
    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Poll ``predicate`` until true; ``TimeoutError`` after ``timeout`` seconds."""
        with anyio.move_on_after(timeout):
            # The predicate reads arbitrary state with no event to wait on: polling is the point.
            while not predicate():  # noqa: ASYNC110
                await anyio.sleep(0.002)
            return
        raise TimeoutError(f"simulator condition {predicate!r} still false after {timeout}s")

    # ---- HTTP ----------------------------------------------------------------------------

    async def _greeting(self, request: web.Request) -> web.Response:
        return web.json_response({"lmstudio": True})

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response({"package": "lmstudio-simulator", "version": self._state.version})

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["namespace"]
        factory = self._namespaces.get(name)
        if factory is None:
            raise web.HTTPNotFound(text=f"unknown namespace {name!r}")
        ws = web.WebSocketResponse(max_msg_size=_MAX_MESSAGE)
        await ws.prepare(request)
        socket_id = next(self._ids)
        transport = request.transport

        def abort() -> None:
            if transport is not None:
                transport.abort()

        self._sockets[socket_id] = abort
        try:
            identifier = await self._authenticate(ws, name, abort)
            if identifier is None:
                return ws
            try:
                conn = Connection(
                    connection_id=socket_id,
                    namespace_name=name,
                    namespace=factory(),
                    state=self._state,
                    ws=ws,
                    abort=abort,
                    client_identifier=identifier,
                    record=self._frames,
                )
                self._connections[socket_id] = conn
                await conn.serve()
            finally:
                self._connections.pop(socket_id, None)
                self._release(identifier)
        finally:
            self._sockets.pop(socket_id, None)
        return ws

    # ---- authentication ------------------------------------------------------------------

    async def _auth_reply(self, ws: web.WebSocketResponse, name: str, reply: Any) -> None:
        frame = env.encode(reply)
        await ws.send_frame(frame, aiohttp.WSMsgType.TEXT)
        if self._frames is not None:
            self._frames.append(("sent", name, reply))

    async def _authenticate(
        self, ws: web.WebSocketResponse, name: str, abort: Callable[[], None]
    ) -> str | None:
        packet: dict[str, Any] | None = None
        with anyio.move_on_after(self.auth_timeout):
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    frame = env.decode(msg.data)
                except ValueError:
                    _log.warning("simulator ignored a malformed auth frame")
                    continue
                if self._frames is not None:
                    self._frames.append(("received", name, frame))
                if _valid_auth(frame):
                    packet = frame
                    break
                _log.warning("simulator ignored an invalid auth packet")
        if packet is None:
            if not ws.closed:
                await self._auth_reply(
                    ws, name, {"success": False, "error": "Authentication timed out"}
                )
                await ws.close()
            return None
        faults = self._state.faults
        if faults.drop_on_auth:
            abort()
            return None
        if faults.stall_auth:
            async for _ in ws:
                pass
            return None
        identifier, passkey = str(packet["clientIdentifier"]), str(packet["clientPasskey"])
        error = self._check_credentials(identifier, passkey)
        if error is not None:
            await self._auth_reply(ws, name, {"success": False, "error": error})
            await ws.close()
            return None
        await self._auth_reply(ws, name, {"success": True})
        return identifier

    def _check_credentials(self, identifier: str, passkey: str) -> str | None:
        if self._token is not None and (identifier, passkey) != self._token:
            if identifier == self._token[0]:
                return f'Failed to validate client: Invalid client passkey for "{identifier}"'
            return "Failed to validate client: this server requires a valid API token"
        record = self._clients.get(identifier)
        if record is None:
            self._clients[identifier] = [passkey, 1]
            return None
        if str(record[0]) != passkey:
            return f'Failed to validate client: Invalid client passkey for client "{identifier}"'
        record[1] += 1
        return None

    def _release(self, identifier: str) -> None:
        record = self._clients.get(identifier)
        if record is None:
            return
        record[1] -= 1
        if record[1] <= 0:
            del self._clients[identifier]
            # Client-scoped resources (uploaded temp files) die with the last socket.
            self._state.files.pop(identifier, None)


async def serve(host: str = "127.0.0.1", port: int = 1234, **simulator_kwargs: Any) -> None:
    """Run a :class:`Simulator` until cancelled (the CLI's ``simulate`` command wraps this)."""
    async with Simulator(host=host, port=port, **simulator_kwargs) as sim:
        _log.info("LM Studio simulator serving %s", sim.base_url)
        await anyio.sleep_forever()

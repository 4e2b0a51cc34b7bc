"""The whole exception tree of lmstudio_async.

Every exception the SDK raises on purpose derives from :class:`LMStudioError`::

    LMStudioError
    ├── LMStudioConnectionError (also ConnectionError)   socket could not open, or dropped
    │   ├── LMStudioNotFoundError                         no LM Studio answered on any host
    │   ├── LMStudioAuthenticationError                   the server refused the credentials
    │   └── LMStudioClientClosedError                     the client was closed (aclose())
    ├── LMStudioTimeoutError (also TimeoutError)          a phase took longer than its deadline
    ├── LMStudioServerError                               the server reported an error
    │   ├── LMStudioModelNotFoundError                    no model matches the key or query
    │   ├── LMStudioPresetNotFoundError                   the named preset does not exist
    │   └── LMStudioChannelError                          an operation's channel ended abnormally
    ├── LMStudioProtocolError                             the server sent something unusable
    │   └── LMStudioRequestRejectedError                  LM Studio refused a request outright
    ├── LMStudioStructuredOutputError                     a reply did not match response_format
    ├── LMStudioToolCallError                             a tool call was invalid or its tool failed
    ├── LMStudioUsageError (also ValueError)              the caller passed something invalid
    │   └── LMStudioConfigError                           an invalid prediction / load config
    └── LMStudioCancelledError                            the operation was cancelled on request

Lower-layer exceptions (aiohttp, msgspec, OSError) are converted at the layer boundary with
``raise ... from exc``; no user-facing layer lets them through.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "LMStudioAuthenticationError",
    "LMStudioCancelledError",
    "LMStudioChannelError",
    "LMStudioClientClosedError",
    "LMStudioConfigError",
    "LMStudioConnectionError",
    "LMStudioError",
    "LMStudioModelNotFoundError",
    "LMStudioNotFoundError",
    "LMStudioPresetNotFoundError",
    "LMStudioProtocolError",
    "LMStudioRequestRejectedError",
    "LMStudioServerError",
    "LMStudioStructuredOutputError",
    "LMStudioTimeoutError",
    "LMStudioToolCallError",
    "LMStudioUsageError",
    "server_error_from_payload",
]


class LMStudioError(Exception):
    """Root of every exception raised by lmstudio_async."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle and copy rebuild an exception as ``cls(*args)``, which an error whose
        # __init__ takes keyword-only details cannot take: rebuild it from its args and
        # attributes instead, whatever its __init__ wants (a process pool, a task queue).
        return (_rebuild_error, (type(self), self.args), self.__dict__ or None)


def _rebuild_error(cls: type[LMStudioError], args: tuple[Any, ...]) -> LMStudioError:
    # Not __init__ (it may want keywords); pickle then restores __dict__ (the details).
    # args is set here: OSError's __new__ leaves it to an __init__ a subclass overrode.
    error = cls.__new__(cls, *args)
    error.args = args
    return error


class LMStudioConnectionError(LMStudioError, ConnectionError):
    """The websocket to LM Studio could not be opened, or it dropped mid-operation.

    The client reconnects on the next call; only the operations that were in flight fail.
    """


class LMStudioNotFoundError(LMStudioConnectionError):
    """No LM Studio instance answered on any of the hosts that were tried."""

    def __init__(self, message: str, *, hosts_tried: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.hosts_tried = hosts_tried


class LMStudioAuthenticationError(LMStudioConnectionError):
    """The server rejected the client's credentials (API token or guest identity)."""


class LMStudioTimeoutError(LMStudioError, TimeoutError):
    """An operation phase exceeded its deadline; anything running server-side was cancelled."""


class LMStudioServerError(LMStudioError):
    """The server reported an error. ``payload`` holds the parsed server error as sent."""

    def __init__(self, message: str, *, payload: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.payload: Mapping[str, Any] = dict(payload or {})

    @property
    def title(self) -> str:
        return str(self.payload.get("title", "Unknown error"))

    @property
    def code(self) -> str | None:
        """The machine-readable ``displayData.code`` (e.g. ``generic.noModelMatchingQuery``)."""
        return _display_code(self.payload)


def _display_code(payload: Mapping[str, Any]) -> str | None:
    display = payload.get("displayData")
    code = display.get("code") if isinstance(display, Mapping) else None
    # Anything but a string (a broken or hostile server) means "no code", never a crash.
    return code if isinstance(code, str) else None


class LMStudioModelNotFoundError(LMStudioServerError):
    """No model matched the key, identifier or query that was given."""


class LMStudioPresetNotFoundError(LMStudioServerError):
    """The preset named in ``preset=`` does not exist on the server."""


class LMStudioChannelError(LMStudioServerError):
    """An operation's channel was ended by the server with an error."""


class LMStudioProtocolError(LMStudioError):
    """The server sent something this client cannot interpret for the current operation."""


class LMStudioRequestRejectedError(LMStudioProtocolError):
    """LM Studio refused a request outright: an endpoint it does not know, or a parameter it
    considers invalid. It says so only with a ``communicationWarning``, quoted in the message.

    ``kind`` is LM Studio's warning kind (``"channelCreationParameterTypeError"``,
    ``"rpcEndpointUnknown"``...) and ``endpoint`` the refused wire endpoint (``"predict"``).
    Usually the LM Studio app is older than this SDK: updating LM Studio is the fix.
    """

    def __init__(self, message: str, *, kind: str, endpoint: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.endpoint = endpoint

    @property
    def endpoint_unknown(self) -> bool:
        """Whether LM Studio does not know (or does not handle) the endpoint at all."""
        return self.kind.endswith(("EndpointUnknown", "EndpointUnhandled"))


class LMStudioStructuredOutputError(LMStudioError):
    """The model's reply does not decode or validate as the requested ``response_format``.

    ``content`` is the raw reply text (without reasoning) and ``stop_reason`` why generation
    ended: a reply cut short (``maxPredictedTokensReached``, ``userStopped``) is often the cause.
    """

    def __init__(self, message: str, *, content: str, stop_reason: str | None = None) -> None:
        super().__init__(message)
        self.content = content
        self.stop_reason = stop_reason


class LMStudioToolCallError(LMStudioError):
    """A tool call in ``act()`` could not be run: unknown tool, invalid arguments, a tool that
    raised (the original exception is ``__cause__``), or a request the model failed to generate.

    ``act()`` passes it to ``handle_invalid_tool_request``; by default its message is sent to
    the model as the tool result.
    """


class LMStudioClientClosedError(LMStudioConnectionError):
    """The client was closed: used after ``aclose()`` (create a new ``LMStudioClient``), or
    closed while this operation was running. A connection error, as the operation's connection
    is gone: code that retries on :class:`LMStudioConnectionError` should check for it first.
    """


class LMStudioUsageError(LMStudioError, ValueError):
    """The caller passed an invalid argument; the message says what to change."""


class LMStudioConfigError(LMStudioUsageError):
    """A prediction or load config has an unknown key or an invalid value."""


class LMStudioCancelledError(LMStudioError):
    """The operation was cancelled on request (e.g. a model load cancelled by the caller)."""


_MODEL_NOT_FOUND_CODES = frozenset(
    {
        "generic.noModelMatchingQuery",
        "generic.pathNotFound",
        "generic.identifierNotFound",
        "generic.specificModelUnloaded",
    }
)


def _format_server_error(payload: Mapping[str, Any]) -> str:
    """Render a server error as title, then cause and suggestion when the server gave them."""
    title = payload.get("title") or payload.get("rootTitle") or "Unknown server error"
    parts = [str(title)]
    cause = payload.get("cause")
    if isinstance(cause, str) and cause:
        parts.append(f"Cause: {cause}")
    suggestion = payload.get("suggestion")
    if isinstance(suggestion, str) and suggestion:
        parts.append(f"Suggestion: {suggestion}")
    display = payload.get("displayData")
    if isinstance(display, Mapping):
        # LM Studio's "no model matching" title does not repeat what was asked for.
        query = display.get("query")
        if isinstance(query, Mapping) and query:
            parts.append("Query: " + ", ".join(f"{k}={v!r}" for k, v in query.items()))
        sample = display.get("loadedModelsSample") or display.get("availablePathsSample")
        if isinstance(sample, list) and sample:
            parts.append("Available: " + ", ".join(str(s) for s in sample))
        elif isinstance(display.get("availablePresetsSample"), list):
            presets = display["availablePresetsSample"]
            names = [str(p.get("identifier", p)) for p in presets if isinstance(p, Mapping)]
            if names:
                parts.append("Available presets: " + ", ".join(names))
    return "\n".join(parts)


def server_error_from_payload(
    payload: Any, *, default: type[LMStudioServerError] = LMStudioServerError
) -> LMStudioServerError:
    """Build the most specific exception for a serialized server error (``displayData.code``)."""
    if not isinstance(payload, Mapping):
        payload = {"title": str(payload)}
    message = _format_server_error(payload)
    code = _display_code(payload)
    if code in _MODEL_NOT_FOUND_CODES:
        return LMStudioModelNotFoundError(message, payload=payload)
    if code == "generic.presetNotFound":
        return LMStudioPresetNotFoundError(message, payload=payload)
    return default(message, payload=payload)

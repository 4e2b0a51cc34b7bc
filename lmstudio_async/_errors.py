"""The whole exception tree of lmstudio_async.

Every exception the SDK raises on purpose derives from :class:`LMStudioError`::

    LMStudioError
    ├── LMStudioConnectionError (also ConnectionError)   socket could not open, or dropped
    │   ├── LMStudioNotFoundError                         no LM Studio answered on any host
    │   └── LMStudioAuthenticationError                   the server refused the credentials
    ├── LMStudioTimeoutError (also TimeoutError)          a phase took longer than its deadline
    ├── LMStudioServerError                               the server reported an error
    │   ├── LMStudioModelNotFoundError                    no model matches the key or query
    │   ├── LMStudioPresetNotFoundError                   the named preset does not exist
    │   └── LMStudioChannelError                          an operation's channel ended abnormally
    ├── LMStudioProtocolError                             the server sent something unusable
    ├── LMStudioStructuredOutputError                     a reply did not match response_format
    ├── LMStudioToolCallError                             a tool call was invalid or its tool failed
    ├── LMStudioClientClosedError                         the client was closed (or used after)
    ├── LMStudioUsageError (also ValueError)              the caller passed something invalid
    │   └── LMStudioConfigError                           an invalid prediction / load config
    └── LMStudioCancelledError                            the operation was cancelled on request

Every public error is defined here. A private subclass defined elsewhere (for instance the
error of an operation cut off by ``aclose()``, both a connection error and a closed-client
error) shows itself under the public name users can catch.

Lower-layer exceptions (aiohttp, msgspec, OSError) are converted at the layer boundary with
``raise ... from exc``; no user-facing layer lets them through.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, ClassVar

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
    "LMStudioServerError",
    "LMStudioStructuredOutputError",
    "LMStudioTimeoutError",
    "LMStudioToolCallError",
    "LMStudioUsageError",
    "server_error_from_payload",
]


_PUBLIC_MODULE = __name__.rpartition(".")[0]  # "lmstudio_async"


class LMStudioError(Exception):
    """Root of every exception raised by lmstudio_async."""

    # Set on private subclasses only (see __init_subclass__): (module, qualified name).
    _defined_at: ClassVar[tuple[str, str]]

    def __init_subclass__(
        cls, *, shown_as: type[LMStudioError] | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__ == __name__ or not cls.__module__.startswith(_PUBLIC_MODULE + "."):
            # A public error (lmstudio_async/__init__.py names the module users import), or
            # a user's own subclass: either keeps its name.
            return
        # A private refinement defined elsewhere (an error that is two public ones at once, or
        # one carrying internal details): tracebacks, reprs, logs and telemetry name the public
        # class a user can import and catch (``shown_as``, else its nearest public base), never
        # a private module path.
        public = shown_as or next(
            base
            for base in cls.__mro__[1:]
            if base.__module__ in (__name__, _PUBLIC_MODULE) and not base.__name__.startswith("_")
        )
        # Pickle finds a class by its module and name: remember where the real one lives.
        cls._defined_at = (cls.__module__, cls.__qualname__)
        cls.__module__ = _PUBLIC_MODULE
        cls.__name__ = cls.__qualname__ = public.__name__

    def __reduce__(self) -> str | tuple[Any, ...]:
        reduced = super().__reduce__()
        defined_at = type(self).__dict__.get("_defined_at")
        if defined_at is None or not isinstance(reduced, tuple):
            return reduced
        # A private refinement: rebuilt as itself (not as the public class it is shown as).
        return (_rebuild_private_error, (defined_at, self.args), *reduced[2:])


def _rebuild_private_error(defined_at: tuple[str, str], args: tuple[Any, ...]) -> LMStudioError:
    module, qualname = defined_at
    cls = getattr(importlib.import_module(module), qualname)
    # As BaseException unpickles: arguments to __new__ (which sets .args), then the instance
    # __dict__ restored by pickle; __init__ may want keywords that are only in that __dict__.
    error: LMStudioError = cls.__new__(cls, *args)
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


class LMStudioClientClosedError(LMStudioError):
    """The client was used after ``aclose()`` (create a new ``LMStudioClient``), or it was
    closed while this operation ran (then the error is a :class:`LMStudioConnectionError` too).
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

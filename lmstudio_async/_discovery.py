"""Where LM Studio is: base-URL normalisation and the greeting probe (PROTOCOL.md §1.2)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import anyio

from ._errors import LMStudioNotFoundError, LMStudioUsageError

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "BASE_URL_ENV_VAR",
    "DEFAULT_HOST",
    "WELL_KNOWN_PORTS",
    "BaseUrl",
    "discover",
    "normalize_base_url",
]

BASE_URL_ENV_VAR: Final = "LMSTUDIO_BASE_URL"
# LM Studio binds one of these for SDK discovery even when its user-facing server is off.
WELL_KNOWN_PORTS: Final = (41343, 52993, 16141, 39414, 22931)
DEFAULT_HOST: Final = "127.0.0.1:1234"


class BaseUrl:
    """A validated LM Studio location: ``ws://host:port[/prefix]`` and its HTTP twin."""

    __slots__ = ("http", "ws")

    def __init__(self, ws: str, http: str) -> None:
        self.ws = ws
        self.http = http

    def __repr__(self) -> str:
        return f"BaseUrl({self.ws!r})"

    def namespace_url(self, namespace: str) -> str:
        return f"{self.ws}/{namespace}"


_SCHEMES: Final = {
    "ws": ("ws", "http"),
    "http": ("ws", "http"),
    "wss": ("wss", "https"),
    "https": ("wss", "https"),
}


# The one problem whose remedy differs between Python callers and the CLI (--api-token).
CREDENTIALS_PROBLEM = "it contains credentials (a user name or password)"


def base_url_problem(value: str) -> str | None:
    """What is wrong with ``value`` as an LM Studio address, or ``None`` if it is usable.

    The text reads after the address ("'x' ..." + problem) and names no API, so the CLI can
    say it in terms of its flags and environment variables.
    """
    text = value.strip()
    if not text:
        return "it is empty"
    if "://" not in text:
        text = "ws://" + text
    try:
        # urlsplit raises ValueError for e.g. an unclosed IPv6 bracket ("[::1").
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        if "port" in str(exc).lower():
            return "its port is not a number from 0 to 65535"
        return f"it is not a valid address ({exc})"
    if parts.scheme not in _SCHEMES:
        return f"the scheme {parts.scheme!r} is not one of ws, wss, http, https"
    if not parts.hostname:
        return "it names no host"
    if parts.username or parts.password:
        return CREDENTIALS_PROBLEM
    if parts.query or parts.fragment:
        return "it has a query string or fragment"
    return None


def normalize_base_url(value: str) -> BaseUrl:
    """Accept ``ws://host:port``, ``http://host:port`` (and the TLS forms) or bare ``host:port``.

    Raises ``LMStudioUsageError`` for anything else (see ``base_url_problem``).
    """
    if not isinstance(value, str) or not value.strip():
        raise LMStudioUsageError(
            f"base_url must be a string like 'localhost:1234' or 'ws://host:port', got {value!r}."
        )
    problem = base_url_problem(value)
    if problem == CREDENTIALS_PROBLEM:
        problem += "; pass api_token= instead"
    if problem is not None:
        raise LMStudioUsageError(
            f"Invalid LM Studio base_url {value!r}: {problem}. Use e.g. 'localhost:1234', "
            "'ws://192.168.1.5:1234' or 'http://localhost:1234'."
        )
    text = value.strip()
    if "://" not in text:
        text = "ws://" + text
    parts = urlsplit(text)
    ws_scheme, http_scheme = _SCHEMES[parts.scheme]
    rest = parts.netloc + parts.path.rstrip("/")
    return BaseUrl(f"{ws_scheme}://{rest}", f"{http_scheme}://{rest}")


def configured_base_url(explicit: str | None) -> BaseUrl | None:
    """The explicit argument, else the environment variable, else ``None`` (probe)."""
    if explicit is not None:
        return normalize_base_url(explicit)
    from_env = os.environ.get(BASE_URL_ENV_VAR, "").strip()
    return normalize_base_url(from_env) if from_env else None


async def discover(session: aiohttp.ClientSession, probe_timeout: float) -> BaseUrl:
    """Probe the well-known ports and 1234 in parallel; prefer well-known ports in order."""
    from ._transport.websocket import probe_greeting

    candidates = [f"127.0.0.1:{port}" for port in WELL_KNOWN_PORTS] + [DEFAULT_HOST]
    answered: dict[str, bool] = {}

    async def probe(host: str) -> None:
        answered[host] = await probe_greeting(session, f"http://{host}", probe_timeout)

    async with anyio.create_task_group() as tg:
        for host in candidates:
            tg.start_soon(probe, host)
    for host in candidates:
        if answered.get(host):
            return normalize_base_url(host)
    raise LMStudioNotFoundError(
        "No LM Studio answered on " + ", ".join(candidates) + ". Start LM Studio (or "
        "`lms server start`), pass base_url='host:port', or set "
        f"{BASE_URL_ENV_VAR}.",
        hosts_tried=tuple(candidates),
    )

"""The aiohttp websocket transport. Imported lazily: aiohttp costs ~100 ms to import."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from typing import Any, Final

import aiohttp

from .._errors import LMStudioConnectionError
from ._base import TransportClosed

__all__ = ["WebSocketTransport", "open_session", "probe_greeting"]

# LM Studio puts whole model lists and embeddings in one frame; don't cap them at aiohttp's 4 MiB.
_MAX_FRAME_BYTES: Final = 256 * 1024 * 1024
# Newer aiohttp can hand TEXT frames over as bytes, saving a UTF-8 decode per frame: msgspec
# decodes bytes directly.
_RAW_TEXT: Final[dict[str, Any]] = (
    {"decode_text": False}
    if "decode_text" in inspect.signature(aiohttp.ClientSession.ws_connect).parameters
    else {}
)
_DATA_TYPES: Final = frozenset({aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY})
# Bytes asked of the socket per read; asyncio's selector transports default to 256 KiB. Every
# prediction that gets packets in a read is woken once for them, so when many predictions
# stream at once a larger read means fewer task switches per fragment: with 1,000 predictions
# interleaved frame by frame, 256 KiB holds ~1.5 fragments of each, 1 MiB ~6, and the client
# spends ~25% less CPU per fragment (benchmarks/RESULTS.md). A slow server changes nothing:
# a read returns whatever has arrived, it never waits to fill the buffer.
_READ_SIZE: Final = 1024 * 1024


def open_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()


class WebSocketTransport:
    """One namespace websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse[Any]) -> None:
        self._ws = ws
        _enlarge_reads(ws)

    @classmethod
    async def connect(
        cls, session: aiohttp.ClientSession, url: str, *, heartbeat: float | None = None
    ) -> WebSocketTransport:
        """Open the websocket; with ``heartbeat``, a peer that stops answering pings is dropped."""
        try:
            ws = await session.ws_connect(
                url,
                autoping=True,
                heartbeat=heartbeat,
                max_msg_size=_MAX_FRAME_BYTES,
                **_RAW_TEXT,
            )
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise LMStudioConnectionError(
                f"Could not open a websocket to {url}: {exc}. Is LM Studio running with its "
                "server enabled on that host and port?"
            ) from exc
        return cls(ws)

    async def send(self, frame: bytes) -> None:
        try:
            await self._ws.send_frame(frame, aiohttp.WSMsgType.TEXT)
        except (aiohttp.ClientError, OSError, RuntimeError) as exc:
            # aiohttp raises ClientConnectionResetError / RuntimeError on a closing socket.
            raise TransportClosed(f"sending failed: {exc}") from exc

    async def receive(self) -> str | bytes:
        msg = await self._ws.receive()
        if msg.type in _DATA_TYPES:
            data: str | bytes = msg.data
            return data
        if msg.type is aiohttp.WSMsgType.ERROR:
            raise TransportClosed(f"websocket error: {msg.data}")
        code = self._ws.close_code
        raise TransportClosed(
            "LM Studio closed the connection" + (f" (close code {code})" if code else "")
        )

    async def aclose(self) -> None:
        # Closing a broken socket must never raise: the caller is already cleaning up.
        with contextlib.suppress(Exception):
            await self._ws.close()


def _enlarge_reads(ws: aiohttp.ClientWebSocketResponse[Any]) -> None:
    """Raise the socket's read size to ``_READ_SIZE`` where the transport has one.

    ``max_size`` is the per-``recv`` size of asyncio's own socket transports (3.10 to 3.13);
    other transports (TLS, uvloop) lack it and keep their own: the effect is speed only.
    """
    writer = getattr(ws, "_writer", None)
    transport = getattr(writer, "transport", None)
    if isinstance(getattr(type(transport), "max_size", None), int):
        transport.max_size = max(transport.max_size, _READ_SIZE)  # type: ignore[union-attr]


async def probe_greeting(session: aiohttp.ClientSession, http_base: str, timeout: float) -> bool:
    """True when ``GET /lmstudio-greeting`` answers like LM Studio (PROTOCOL.md §1.2)."""
    try:
        async with session.get(
            http_base + "/lmstudio-greeting", timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            if response.status != 200:
                return False
            body = await response.json(content_type=None)
    # aiohttp's timeouts raise asyncio.TimeoutError: the builtin (an OSError) since Python
    # 3.11, a class of its own on 3.10.
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError):
        return False
    return isinstance(body, dict) and body.get("lmstudio") is True

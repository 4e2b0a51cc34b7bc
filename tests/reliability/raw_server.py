"""A loopback websocket server that speaks only what a test scripts: for frames no well-behaved
server (nor the simulator) sends, as raw bytes in TEXT frames, through the real transport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
from aiohttp import web

__all__ = ["SUCCESS", "RawServer", "ServerEnd", "serve_raw"]

# A predict channel's final packet, schema-complete.
SUCCESS: dict[str, Any] = {
    "type": "success",
    "stats": {"stopReason": "eosFound", "predictedTokensCount": 4},
    "modelInfo": {
        "type": "llm",
        "modelKey": "qwen2.5-7b-instruct",
        "format": "gguf",
        "displayName": "Qwen2.5 7B Instruct",
        "publisher": "lmstudio-community",
        "path": "lmstudio-community/Qwen2.5-7B-Instruct-GGUF/Qwen2.5-7B-Instruct-Q4_K_M.gguf",
        "sizeBytes": 4683073952,
        "architecture": "qwen2",
        "paramsString": "7B",
        "vision": False,
        "trainedForToolUse": True,
        "maxContextLength": 32768,
        "identifier": "qwen2.5-7b-instruct",
        "instanceReference": "inst-1",
        "ttlMs": None,
        "lastUsedTime": None,
        "contextLength": 4096,
    },
}


class ServerEnd:
    """The server side of one websocket: send raw TEXT frames, receive parsed client frames."""

    def __init__(self, ws: web.WebSocketResponse, namespace: str) -> None:
        self.ws = ws
        self.namespace = namespace

    async def send(self, frame: bytes) -> None:
        # TEXT frames with whatever bytes the test chose: no UTF-8 check on the way out.
        await self.ws.send_frame(frame, aiohttp.WSMsgType.TEXT)

    async def send_json(self, value: Any) -> None:
        await self.send(json.dumps(value).encode())

    async def receive(self) -> str | bytes:
        msg = await self.ws.receive()
        if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            raise ConnectionError("the client closed the websocket")
        data: str | bytes = msg.data
        return data

    async def receive_json(self) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(await self.receive())
        return frame

    async def accept_auth(self) -> None:
        await self.receive()
        await self.send(b'{"success": true}')

    async def aclose(self) -> None:
        await self.ws.close()


Handler = Callable[[ServerEnd], Awaitable[None]]


class RawServer:
    """Where the server listens, for ``LMStudioClient(server.base_url)``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base_url = f"127.0.0.1:{port}"


@asynccontextmanager
async def serve_raw(handler: Handler) -> AsyncIterator[RawServer]:
    """Serve ``handler(end)`` for every websocket opened at ``ws://127.0.0.1:<port>/<ns>``."""

    async def on_socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        end = ServerEnd(ws, request.match_info["namespace"])
        try:
            await handler(end)
        except (ConnectionError, anyio.get_cancelled_exc_class()):
            pass
        finally:
            await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/{namespace}", on_socket)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port: int = runner.addresses[0][1]
    try:
        yield RawServer(port)
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()

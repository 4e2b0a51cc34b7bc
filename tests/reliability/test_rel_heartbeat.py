"""A peer that vanishes without closing the socket is noticed by the heartbeat, not waited on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from aiohttp import WSMsgType, web

import lmstudio_async as lms

pytestmark = pytest.mark.anyio


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """Authenticates, then neither answers anything nor pongs: a machine that went to sleep."""
    done = anyio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        await ws.receive()  # the auth packet
        await ws.send_str('{"success":true}')
        async for message in ws:  # read (and ignore) everything, pings included
            if message.type is WSMsgType.CLOSE:
                break
        await done.wait()
        return ws

    app = web.Application()
    app.router.add_get("/system", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        done.set()
        await runner.cleanup()


async def test_a_silent_peer_fails_the_call_within_the_heartbeat(silent_server: str) -> None:
    timeouts = lms.Timeouts(heartbeat=0.2, rpc=None)
    async with lms.LMStudioClient(silent_server, timeouts=timeouts) as client:
        with anyio.fail_after(3), pytest.raises(lms.LMStudioConnectionError):
            await client.system.version()
        assert client._open_channel_count() == 0


def test_heartbeat_must_be_positive() -> None:
    with pytest.raises(lms.LMStudioUsageError, match="heartbeat"):
        lms.Timeouts(heartbeat=0)

"""The multiplexer over an in-memory pipe: routing, failure scopes, tolerance of bad input."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec
import pytest

from lmstudio_async import (
    LMStudioAuthenticationError,
    LMStudioConnectionError,
    LMStudioModelNotFoundError,
    LMStudioRequestRejectedError,
    LMStudioTimeoutError,
)
from lmstudio_async._mux import ChannelClosed, Connection
from lmstudio_async._protocol.auth import Credentials
from lmstudio_async._transport import Transport
from lmstudio_async._transport.memory import MemoryTransport, memory_transport_pair

pytestmark = pytest.mark.anyio

CREDENTIALS = Credentials("guest:test", "secret", from_token=False)


class FakeServer:
    """The server end of the pipe, driven step by step by the test."""

    def __init__(self, end: MemoryTransport) -> None:
        self.end = end

    async def receive(self) -> dict[str, Any]:
        """The next frame, skipping the client's order barriers (left unanswered here)."""
        while True:
            frame = await self.end.receive()
            decoded: dict[str, Any] = json.loads(frame)
            if not _is_barrier(decoded):
                return decoded

    async def send(self, message: dict[str, Any] | str) -> None:
        frame = message if isinstance(message, str) else json.dumps(message)
        await self.end.send(frame.encode())


def _is_barrier(frame: dict[str, Any]) -> bool:
    parameter = frame.get("parameter")
    return (
        frame.get("endpoint") == "getModelInfo"
        and isinstance(parameter, dict)
        and parameter.get("throwIfNotFound") is False
        and "lmstudio-async-order-barrier" in json.dumps(parameter)
    )


@asynccontextmanager
async def connected(
    *, auth_reply: dict[str, Any] | None = None
) -> AsyncIterator[tuple[Connection, FakeServer]]:
    client_end, server_end = memory_transport_pair()
    server = FakeServer(server_end)

    async def factory(url: str) -> Transport:
        return client_end

    connection = Connection(
        namespace="llm",
        url="ws://memory/llm",
        credentials=CREDENTIALS,
        transport_factory=factory,
        auth_timeout=10.0,
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_authenticate, server, auth_reply or {"success": True})
            await tg.start(connection.run)
            yield connection, server
            tg.cancel_scope.cancel()
    finally:
        await server_end.aclose()


async def _authenticate(server: FakeServer, reply: dict[str, Any]) -> None:
    packet = await server.receive()
    assert packet == {"authVersion": 1, "clientIdentifier": "guest:test", "clientPasskey": "secret"}
    await server.send(reply)


async def test_rpc_results_and_errors_are_routed_by_call_id() -> None:
    async with connected() as (connection, server), anyio.create_task_group() as tg:
        results: dict[str, Any] = {}

        async def call(name: str) -> None:
            try:
                raw = await connection.call(name)
                assert isinstance(raw, msgspec.Raw)
                results[name] = msgspec.json.decode(raw)
            except LMStudioModelNotFoundError as exc:
                results[name] = exc

        tg.start_soon(call, "first")
        tg.start_soon(call, "second")
        calls = {(m := await server.receive())["endpoint"]: m["callId"] for _ in range(2)}
        assert "parameter" not in m  # void parameters are omitted, never null
        error = {"title": "gone", "displayData": {"code": "generic.identifierNotFound"}}
        await server.send({"type": "rpcError", "callId": calls["second"], "error": error})
        await server.send({"type": "rpcResult", "callId": calls["first"], "result": [1]})
    assert results["first"] == [1]
    assert isinstance(results["second"], LMStudioModelNotFoundError)


async def test_channels_get_only_their_own_packets_and_tolerate_noise() -> None:
    async with connected() as (connection, server):
        a = connection.open_channel("predict", {"n": 1})
        b = connection.open_channel("predict", {"n": 2})
        created = [await server.receive(), await server.receive()]
        ids = [m["channelId"] for m in created]
        assert ids[0] != ids[1]
        noise: list[dict[str, Any] | str] = [
            "not json at all",
            {"type": "someFutureEnvelope", "x": 1},
            {"type": "channelSend", "channelId": 999, "message": {"type": "fragment"}},
            {"type": "keepAliveAck"},
            {"type": "communicationWarning", "warning": "hello", "kind": "channelUnknown"},
            {"type": "rpcResult", "callId": 12345, "result": 1},
        ]
        for item in noise:
            await server.send(item)
        await server.send({"type": "channelSend", "channelId": ids[1], "message": {"v": "b1"}})
        await server.send({"type": "channelSend", "channelId": ids[0], "message": {"v": "a1"}})
        await server.send({"type": "channelClose", "channelId": ids[0]})
        await server.send({"type": "channelClose", "channelId": ids[0]})  # late duplicate
        a1, b1 = await a.next(), await b.next()
        assert isinstance(a1, msgspec.Raw)
        assert isinstance(b1, msgspec.Raw)
        assert msgspec.json.decode(a1) == {"v": "a1"}
        with pytest.raises(ChannelClosed):
            await a.next()
        assert msgspec.json.decode(b1) == {"v": "b1"}
        assert connection.open_channel_count == 1


async def test_protocol_warnings_are_logged_except_a_crossed_cancel(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="lmstudio_async")
    async with connected() as (connection, server):
        channel = connection.open_channel("predict", {})
        channel_id = (await server.receive())["channelId"]
        for kind in ("channelUnknown", "rpcCallIdUnknown"):
            await server.send({"type": "communicationWarning", "warning": "w", "kind": kind})
        await server.send({"type": "channelSend", "channelId": channel_id, "message": {}})
        await channel.next()  # frames are read in order: both warnings were handled
        channel.abandon()
    warnings = [r for r in caplog.records if "reported a protocol problem" in r.getMessage()]
    levels = {r.getMessage().split("(")[1].split(")")[0]: r.levelno for r in warnings}
    assert levels["channelUnknown"] == logging.DEBUG, "a cancel that crossed the end is normal"
    assert levels["rpcCallIdUnknown"] == logging.WARNING


async def test_cancel_is_sent_once_and_abandon_discards() -> None:
    async with connected() as (connection, server):
        channel = connection.open_channel("predict", {})
        channel_id = (await server.receive())["channelId"]
        channel.cancel()
        channel.cancel()
        channel.abandon()
        assert await server.receive() == {
            "type": "channelSend",
            "channelId": channel_id,
            "message": {"type": "cancel"},
        }
        await server.send({"type": "channelSend", "channelId": channel_id, "message": {}})
        await server.send({"type": "channelClose", "channelId": channel_id})
        # The packet that arrived after abandon() was dropped; only the close remains.
        with anyio.fail_after(1), pytest.raises(ChannelClosed):
            await channel.next()
        assert connection.open_channel_count == 0


async def test_a_rejecting_warning_fails_the_named_request_instead_of_hanging() -> None:
    async with connected() as (connection, server), anyio.create_task_group() as tg:
        failures: list[BaseException] = []

        async def call() -> None:
            try:
                await connection.call("brandNewEndpoint")
            except LMStudioRequestRejectedError as exc:
                failures.append(exc)

        tg.start_soon(call)
        await server.receive()
        await server.send(
            {
                "type": "communicationWarning",
                "kind": "rpcEndpointUnknown",
                "warning": "Received rpcCall for unknown endpoint, endpointName = brandNewEndpoint",
            }
        )
    assert len(failures) == 1
    assert "brandNewEndpoint" in str(failures[0])


async def test_losing_the_pipe_fails_everything_in_flight() -> None:
    async with connected() as (connection, server), anyio.create_task_group() as tg:
        errors: list[BaseException] = []
        channel = connection.open_channel("predict", {})

        async def call() -> None:
            try:
                await connection.call("listLoaded")
            except LMStudioConnectionError as exc:
                errors.append(exc)

        tg.start_soon(call)
        await server.receive()
        await server.receive()
        await server.end.aclose()
        with pytest.raises(LMStudioConnectionError):
            await channel.next()
    assert len(errors) == 1
    assert not connection.alive
    with pytest.raises(LMStudioConnectionError):
        connection.open_channel("predict", {})


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        ({"success": False, "error": "Invalid passkey"}, LMStudioAuthenticationError, "passkey"),
        (None, LMStudioTimeoutError, "authentication"),
    ],
)
async def test_auth_rejection_and_timeout(
    reply: dict[str, Any] | None, error: type[Exception], message: str
) -> None:
    client_end, server_end = memory_transport_pair()
    server = FakeServer(server_end)

    async def factory(url: str) -> Transport:
        return client_end

    connection = Connection(
        namespace="llm",
        url="ws://memory/llm",
        credentials=CREDENTIALS,
        transport_factory=factory,
        # Long enough that a rejection on a loaded machine is never mistaken for a timeout.
        auth_timeout=0.05 if reply is None else 10.0,
    )
    async with anyio.create_task_group() as tg:
        if reply is not None:
            tg.start_soon(_authenticate, server, reply)
        with pytest.raises(error, match=message):
            await tg.start(connection.run)
    await server_end.aclose()
    assert not connection.alive

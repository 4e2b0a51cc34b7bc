"""The websocket transport's read size, which the many-predictions throughput depends on."""

from __future__ import annotations

import importlib
from pathlib import Path

import aiohttp
import pytest

from lmstudio_async._transport.websocket import _READ_SIZE, WebSocketTransport
from lmstudio_async.testing import Simulator

pytestmark = pytest.mark.anyio

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


async def test_a_plain_websocket_reads_up_to_a_mebibyte_per_socket_read() -> None:
    # With 1,000 predictions interleaved on one socket, asyncio's default 256 KiB reads wake
    # every prediction for ~1.5 fragments; 1 MiB reads cut the client's CPU per fragment by a
    # quarter (benchmarks/RESULTS.md). This fails if aiohttp stops exposing the transport.
    async with Simulator() as sim, aiohttp.ClientSession() as session:
        transport = await WebSocketTransport.connect(session, f"ws://127.0.0.1:{sim.port}/llm")
        try:
            writer = transport._ws._writer
            assert writer is not None
            assert getattr(writer.transport, "max_size", None) == 1024 * 1024
        finally:
            await transport.aclose()


async def test_the_benchmark_floor_reads_as_much_per_socket_read_as_ours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A fair floor: with asyncio's default 256 KiB reads the floor spent ~3-4% more CPU per
    # fragment than with ours' 1 MiB, flattering ours' ratio to it.
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    worker = importlib.import_module("_worker")
    async with Simulator() as sim, worker.CLIENTS["floor"](sim.port) as floor:
        transport = floor._ws._writer.transport
        assert transport.max_size == _READ_SIZE

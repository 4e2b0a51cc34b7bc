"""Benchmark server process: every server the benchmarks talk to, on ephemeral loopback ports.

Prints one JSON line of ports once all listen, then serves until stdin closes (the orchestrator
owns this process; closing its stdin stops it cleanly). The orchestrator reads this process's
CPU time around every measurement, to show that the server was not the bottleneck.

* ``sequential`` and ``interleaved``: the websocket firehose (``_firehose_server.py``), one
  port per interleaving of concurrent predictions' fragments.
* ``openai``: ``Simulator(firehose=True)``, for its OpenAI-compatible ``/v1/chat/completions``
  (SSE, one HTTP stream per prediction: interleaving does not apply).
* ``stall``: a simulator where every prediction sends one fragment and then waits for a cancel
  (scenario 5).
"""

from __future__ import annotations

import asyncio
import json
import sys

from _firehose_server import Interleaving, firehose_app
from aiohttp import web

from lmstudio_async.testing import Faults, Simulator


async def _serve(interleaving: Interleaving) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(firehose_app(interleaving), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port: int = runner.addresses[0][1]
    return runner, port


async def main() -> None:
    sequential, sequential_port = await _serve("sequential")
    interleaved, interleaved_port = await _serve("interleaved")
    try:
        async with Simulator(firehose=True) as fire, Simulator() as stall:
            stall.faults = Faults(stall_after_fragments=1)
            ports = {
                "sequential": sequential_port,
                "interleaved": interleaved_port,
                "openai": fire.port,
                "stall": stall.port,
            }
            print(json.dumps(ports), flush=True)
            # Serve until the orchestrator closes our stdin.
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await sequential.cleanup()
        await interleaved.cleanup()


if __name__ == "__main__":
    asyncio.run(main())

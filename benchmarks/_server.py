"""Benchmark server process: two simulators on ephemeral loopback ports.

Prints one JSON line ``{"firehose": port, "stall": port}`` once both listen, then serves until
stdin closes (the orchestrator owns this process; closing its stdin stops it cleanly).

* ``firehose``: ``Simulator(firehose=True)``: every unscripted prediction streams
  ``maxPredictedTokens`` fragments as fast as the socket takes them (websocket and
  ``/v1/chat/completions``).
* ``stall``: every prediction sends one fragment and then waits for a cancel (scenario 5).
"""

from __future__ import annotations

import json
import sys

import anyio
import anyio.to_thread

from lmstudio_async.testing import Faults, Simulator


async def main() -> None:
    async with Simulator(firehose=True) as fire, Simulator() as stall:
        stall.faults = Faults(stall_after_fragments=1)
        print(json.dumps({"firehose": fire.port, "stall": stall.port}), flush=True)
        # Serve until the orchestrator closes our stdin.
        await anyio.to_thread.run_sync(sys.stdin.read)


if __name__ == "__main__":
    anyio.run(main)

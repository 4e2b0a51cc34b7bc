"""The client's receive path alone, with no server and no socket: for judging hot-path changes.

Usage (from the repository root)::

    uv run python benchmarks/hot_path.py [PREDICTIONS FRAGMENTS FRAMES_PER_READ]
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python benchmarks/hot_path.py 1000 30 6600    # instruction count

``PREDICTIONS`` predictions iterate with ``async for`` while the real receive loop
(``Connection._read_loop``) reads pre-built fragment frames from an in-process transport,
interleaved frame by frame and handed over ``FRAMES_PER_READ`` at a time (one event-loop
turn per "socket read", like a 1 MiB read of ~150-byte frames holds ~6,600). Each fragment
carries its prediction and position; the run fails unless every prediction got exactly its
own, in order. Prints the CPU time per fragment.

On this shared machine timings move with the load; the number of instructions does not.
Compare two versions of the code by the difference between two runs that differ only in
``FRAGMENTS`` (which cancels start-up and imports), under callgrind.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time

from lmstudio_async import LMStudioConnectionError
from lmstudio_async._mux import Channel, Connection
from lmstudio_async._prediction._callbacks import PredictionCallbacks
from lmstudio_async._prediction._stream import PredictionStream
from lmstudio_async._protocol.auth import Credentials
from lmstudio_async._transport import Transport, TransportClosed


def _frame(channel_id: int, position: int) -> bytes:
    # Numbered like the firehose server's fragments, so a fragment delivered out of order, to
    # the wrong prediction or twice fails the run.
    return (
        b'{"type":"channelSend","channelId":%d,"message":{"type":"fragment","fragment":'
        b'{"content":" p%d %07d","tokensCount":1,"containsDrafted":false,'
        b'"reasoningType":"none","isStructural":false}}}' % (channel_id, channel_id, position)
    )


def _content(channel_id: int, position: int) -> str:
    return f" p{channel_id} {position:07d}"


class _Reads:
    """A transport whose ``receive`` yields to the event loop once per ``per_read`` frames."""

    def __init__(self, frames: list[bytes], per_read: int) -> None:
        self._frames = frames
        self._next = 0
        self._per_read = per_read

    async def send(self, frame: bytes) -> None:
        pass

    async def receive(self) -> bytes:
        index = self._next
        if index == len(self._frames):
            raise TransportClosed("all frames read")
        if index % self._per_read == 0:
            await asyncio.sleep(0)  # the end of one socket read: the woken predictions run
        self._next = index + 1
        return self._frames[index]

    async def aclose(self) -> None:
        pass


async def main(predictions: int, fragments: int, per_read: int) -> float:
    """CPU seconds per fragment for ``predictions`` x ``fragments`` interleaved fragments."""
    connection = Connection(
        namespace="llm",
        url="ws://in-process/llm",
        credentials=Credentials("guest:bench", "x", from_token=False),
        transport_factory=_no_connect,
    )
    channels = [connection.open_channel("predict", {}) for _ in range(predictions)]
    for channel in channels:
        channel.takes_fragments = True
    frames = [_frame(channel.id, i) for i in range(fragments) for channel in channels]
    received: dict[int, list[str]] = {}

    async def consume(channel: Channel) -> None:
        async def opened() -> Channel:
            return channel

        stream: PredictionStream[str] = PredictionStream(
            open_channel=opened, callbacks=PredictionCallbacks()
        )
        contents: list[str] = []
        with contextlib.suppress(LMStudioConnectionError):  # the end: the loop is closed
            async for fragment in stream:
                contents.append(fragment.content)
        received[channel.id] = contents

    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(consume(channel)) for channel in channels]
    await asyncio.sleep(0)
    started = time.process_time()
    with contextlib.suppress(TransportClosed):  # the end of the frames
        await connection._read_loop(_Reads(frames, per_read))
    await asyncio.sleep(0)
    elapsed = time.process_time() - started
    connection.close(LMStudioConnectionError("benchmark over"))
    await asyncio.gather(*tasks)
    for channel in channels:
        got = received[channel.id]
        if got != [_content(channel.id, i) for i in range(fragments)]:
            raise SystemExit(
                f"prediction on channel {channel.id}: {len(got)} fragments (expected "
                f"{fragments}), not all in order: first {got[:3]}"
            )
    return elapsed / (predictions * fragments)


async def _no_connect(url: str) -> Transport:
    raise AssertionError("the receive loop is driven directly; nothing connects")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:4]] or [1000, 100, 6600]
    per_fragment = asyncio.run(main(*args))
    print(f"{per_fragment * 1e6:.3f} µs CPU per fragment ({args[0]} x {args[1]}, {args[2]}/read)")

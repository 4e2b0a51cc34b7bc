"""One benchmark measurement in a fresh process.

Usage: ``python benchmarks/_worker.py CLIENT SCENARIO JSON``.

``JSON`` carries the ports and sizes; the result is one JSON line on stdout. Every client runs
the same workload: the websocket clients against the benchmark's firehose server
(``_firehose_server.py``), openai against the simulator's ``/v1``, all served by one
``_server.py`` process. Imports happen inside the measured functions so the cold-start
scenario can time them.

Clients:

* ``ours``: ``lmstudio_async.LMStudioClient`` over the websocket API.
* ``official``: ``lmstudio.AsyncClient`` 1.5 (the official SDK) over the websocket API.
* ``openai``: ``openai.AsyncOpenAI`` streaming SSE from the simulator's ``/v1`` endpoint.
* ``floor``: a bare aiohttp websocket loop that decodes each frame with msgspec into typed
  structs and appends fragment contents per channel: no SDK logic at all, the stack's limit.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

T_PROCESS_START = time.perf_counter()

LLM = "qwen2.5-7b-instruct"
# Bytes the floor asks of its socket per read: the same as lmstudio_async's ``_READ_SIZE``
# (a test keeps the two equal), not imported so the floor never imports lmstudio_async.
FLOOR_READ_SIZE = 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE")
# Scenario 5: seconds every in-flight prediction gets to receive its first fragment (the
# "arrival_limit" parameter overrides it).
ARRIVAL_LIMIT = 120.0


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def cpu_seconds(pid: int) -> float:
    """CPU time process ``pid`` has used so far, all threads, from /proc (Linux; ns precision).

    ``/proc/PID/stat`` counts in 10 ms ticks, too coarse for a server that is meant to be
    nearly idle during a one-second run; each thread's ``schedstat`` counts nanoseconds.
    """
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            continue  # the thread ended meanwhile
    return total / 1e9


def tag_of(index: int) -> str:
    return f"p{index}"


# ---- clients: each exposes connect() -> session, predict(session, tag, n) -> list[str], close


class _Ours:
    def __init__(self, port: int) -> None:
        self.port = port

    async def __aenter__(self) -> _Ours:
        import lmstudio_async as lms

        self._client = lms.LMStudioClient(f"ws://127.0.0.1:{self.port}")
        await self._client.__aenter__()
        self.model = await self._client.llm.model(LLM)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.__aexit__(None, None, None)

    async def predict(self, tag: str, n: int, first: Callable[[], None] | None = None) -> list[str]:
        out: list[str] = []
        async for fragment in self.model.respond(tag, config={"max_tokens": n}):
            out.append(fragment.content)
            if first is not None and len(out) == 1:
                first()
        return out


class _Official:
    def __init__(self, port: int) -> None:
        self.port = port

    async def __aenter__(self) -> _Official:
        import lmstudio

        self._client = lmstudio.AsyncClient(f"127.0.0.1:{self.port}")
        await self._client.__aenter__()
        self.model = await self._client.llm.model(LLM)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.__aexit__(None, None, None)

    async def predict(self, tag: str, n: int, first: Callable[[], None] | None = None) -> list[str]:
        out: list[str] = []
        stream = await self.model.respond_stream(tag, config={"maxTokens": n})
        async for fragment in stream:
            out.append(fragment.content)
            if first is not None and len(out) == 1:
                first()
        return out


class _OpenAI:
    def __init__(self, port: int) -> None:
        self.port = port

    async def __aenter__(self) -> _OpenAI:
        import openai

        self._client = openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{self.port}/v1", api_key="lm-studio", max_retries=0
        )
        await self._client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.__aexit__(None, None, None)

    async def predict(self, tag: str, n: int, first: Callable[[], None] | None = None) -> list[str]:
        out: list[str] = []
        stream = await self._client.chat.completions.create(
            model=LLM, messages=[{"role": "user", "content": tag}], stream=True, max_tokens=n
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                out.append(chunk.choices[0].delta.content)
                if first is not None and len(out) == 1:
                    first()
        return out


class _Floor:
    """Bare aiohttp + msgspec: one typed decode per frame, per-channel lists, no tasks."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def __aenter__(self) -> _Floor:
        import aiohttp
        import msgspec
        from _floor_types import Envelope

        self._decode = msgspec.json.Decoder(Envelope).decode
        self._encode = msgspec.json.Encoder().encode
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(f"ws://127.0.0.1:{self.port}/llm")
        # The socket read size ours uses (lmstudio_async/_transport/websocket.py): the floor is
        # to mark what aiohttp + msgspec cost per frame, and asyncio's default 256 KiB reads
        # cost it ~3-4% more CPU with many predictions interleaved.
        writer = self._ws._writer
        assert writer is not None
        writer.transport.max_size = FLOOR_READ_SIZE  # type: ignore[attr-defined]
        await self._ws.send_str(
            self._encode(
                {"authVersion": 1, "clientIdentifier": "floor", "clientPasskey": "x"}
            ).decode()
        )
        await self._ws.receive()
        self._channels: dict[int, tuple[list[str], asyncio.Future[list[str]], Any]] = {}
        self._next = 0
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._reader.cancel()
        await self._ws.close()
        await self._session.close()

    async def _read(self) -> None:
        try:
            await self._read_frames()
        except BaseException as exc:
            for _, done, _ in self._channels.values():
                if not done.done():
                    done.set_exception(RuntimeError(f"floor reader failed: {exc!r}"))
            raise

    async def _read_frames(self) -> None:
        decode, channels = self._decode, self._channels
        async for msg in self._ws:
            env = decode(msg.data)
            if env.type == "channelSend":
                message = env.message
                if message is not None and message.fragment is not None:
                    entry = channels[env.channel_id]  # type: ignore[index]
                    entry[0].append(message.fragment.content)
                    if entry[2] is not None and len(entry[0]) == 1:
                        entry[2]()
            elif env.type == "channelClose":
                out, done, _ = channels.pop(env.channel_id)  # type: ignore[arg-type]
                done.set_result(out)

    async def predict(self, tag: str, n: int, first: Callable[[], None] | None = None) -> list[str]:
        self._next += 1
        channel_id = self._next
        done: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._channels[channel_id] = ([], done, first)
        layer = {
            "layerName": "apiOverride",
            "config": {
                "fields": [
                    {
                        "key": "llm.prediction.maxPredictedTokens",
                        "value": {"checked": True, "value": n},
                    }
                ]
            },
        }
        param = {
            "modelSpecifier": {"type": "query", "query": {"identifier": LLM}},
            "history": {"messages": [{"role": "user", "content": [{"type": "text", "text": tag}]}]},
            "predictionConfigStack": {"layers": [layer]},
        }
        await self._ws.send_str(
            self._encode(
                {
                    "type": "channelCreate",
                    "endpoint": "predict",
                    "channelId": channel_id,
                    "creationParameter": param,
                }
            ).decode()
        )
        return await done


CLIENTS: dict[str, Callable[[int], Any]] = {
    "ours": _Ours,
    "official": _Official,
    "openai": _OpenAI,
    "floor": _Floor,
}


# ---- scenarios -------------------------------------------------------------------------


def expected_fragments(client: str, tag: str, n: int) -> list[str]:
    """What a prediction of ``n`` fragments prompted with ``tag`` must deliver, in order.

    The websocket firehose numbers each fragment (``_firehose_server.py``: 7 digits from 0),
    so a fragment delivered to the wrong prediction, twice, or out of order is caught; the
    simulator's ``/v1`` that openai reads repeats the tag.
    """
    if client == "openai":
        return [" " + tag] * n
    return [f" {tag} {i:07d}" for i in range(n)]


def _check(client: str, tag: str, n: int, got: list[str]) -> None:
    expected = expected_fragments(client, tag, n)
    if got != expected:
        pairs = zip(got, expected, strict=False)  # either may be the shorter
        wrong = next((i for i, (a, b) in enumerate(pairs) if a != b), None)
        where = "" if wrong is None else f"; fragment {wrong}: {got[wrong]!r}"
        raise SystemExit(f"prediction {tag}: {len(got)} fragments (expected {n}){where}")


async def stream(client: str, params: dict[str, Any]) -> dict[str, Any]:
    """Scenario 1 (one prediction) and 2/3 (``predictions`` at once on one client)."""
    n, count, server = params["fragments"], params.get("predictions", 1), params["server_pid"]
    async with CLIENTS[client](params["port"]) as c:
        await c.predict("warm", 10)
        gc.collect()
        server0 = cpu_seconds(server)
        cpu0, t0 = time.process_time(), time.perf_counter()
        results = await asyncio.gather(*(c.predict(tag_of(i), n) for i in range(count)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        server_cpu = cpu_seconds(server) - server0
    for i, got in enumerate(results):
        _check(client, tag_of(i), n, got)
    total = n * count
    return {
        "fragments_per_s": total / wall,
        "cpu_s_per_100k": cpu * 100_000 / total,
        # The share of the run the server spent on a CPU: near 1.0 would mean it set the pace.
        "server_busy": server_cpu / wall,
        "server_cpu_s": server_cpu,
        "wall_s": wall,
    }


async def cold(client: str, params: dict[str, Any]) -> dict[str, Any]:
    """Scenario 4: import + connect + one short respond + close, from process start."""
    async with CLIENTS[client](params["port"]) as c:
        got = await c.predict("hello", 8)
    _check(client, "hello", 8, got)
    return {"wall_s": time.perf_counter() - T_PROCESS_START}


async def memory(client: str, params: dict[str, Any]) -> dict[str, Any]:
    """Scenario 5: RSS per in-flight prediction, each held open by a stalled server."""
    count = params["predictions"]
    async with CLIENTS[client](params["port"]) as c:
        # Warm every code path first: one prediction held in flight and then cancelled.
        loop = asyncio.get_running_loop()
        warm = asyncio.Event()
        task = loop.create_task(c.predict("warm", 10, warm.set))
        await warm.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # One shared counter (not an Event per prediction) keeps the harness's own cost low.
        arrived = [0]
        all_in = asyncio.Event()

        def on_first() -> None:
            arrived[0] += 1
            if arrived[0] == count:
                all_in.set()

        gc.collect()
        before = rss_bytes()
        tasks = [loop.create_task(c.predict(tag_of(i), 10, on_first)) for i in range(count)]
        limit = params.get("arrival_limit", ARRIVAL_LIMIT)
        try:
            await asyncio.wait_for(all_in.wait(), timeout=limit)
            gc.collect()
            after = rss_bytes()
        except asyncio.TimeoutError:  # the builtin only from Python 3.11
            failed = [t for t in tasks if t.done() and not t.cancelled() and t.exception()]
            detail = f"; first failure: {failed[0].exception()!r}" if failed else ""
            raise SystemExit(
                f"only {arrived[0]:,} of {count:,} predictions got their first fragment within "
                f"{limit:g} s ({len(failed):,} failed){detail}"
            ) from None
        finally:
            # Also on failure: tasks left running when the client closes would each end
            # with the client's "closed" error, logged as never retrieved, burying the cause.
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return {"bytes_per_prediction": (after - before) / count}


SCENARIOS: dict[str, Callable[[str, dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]] = {
    "stream": stream,
    "cold": cold,
    "memory": memory,
}


def main() -> None:
    client, scenario, raw = sys.argv[1], sys.argv[2], sys.argv[3]
    result = asyncio.run(SCENARIOS[scenario](client, json.loads(raw)))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

"""The benchmark firehose numbers every fragment, and the worker's check holds it to that order."""

from __future__ import annotations

import asyncio
import importlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType

import msgspec
import pytest
from aiohttp import web

import lmstudio_async as lms

pytestmark = pytest.mark.anyio

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
LLM = "qwen2.5-7b-instruct"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, ModuleType]:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("_firehose_server"), importlib.import_module("_worker")


@asynccontextmanager
async def _serving(app: web.Application) -> AsyncIterator[int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port: int = runner.addresses[0][1]
        yield port
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("interleaving", ["sequential", "interleaved"])
async def test_every_prediction_gets_its_own_numbered_fragments_in_order(
    bench: tuple[ModuleType, ModuleType], interleaving: str
) -> None:
    firehose, worker = bench
    # 30 predictions of 1,500 fragments: several 256 KiB writes each, and (sequential) writes
    # that end one channel and start the next.
    async with (
        _serving(firehose.firehose_app(interleaving)) as port,
        lms.LMStudioClient(f"ws://127.0.0.1:{port}") as client,
    ):
        model = await client.llm.model(LLM)

        async def predict(tag: str) -> list[str]:
            prediction = model.respond(tag, config={"max_tokens": 1500})
            return [fragment.content async for fragment in prediction]

        tags = [f"p{i}" for i in range(30)]
        results = await asyncio.gather(*(predict(tag) for tag in tags))
    for tag, got in zip(tags, results, strict=True):
        assert got == worker.expected_fragments("ours", tag, 1500)
    assert results[3][41] == " p3 0000041"


def test_the_worker_check_fails_a_prediction_whose_fragments_came_out_of_order(
    bench: tuple[ModuleType, ModuleType],
) -> None:
    _, worker = bench
    got = [" p1 0000000", " p1 0000002", " p1 0000001"]
    with pytest.raises(SystemExit, match="fragment 1: ' p1 0000002'"):
        worker._check("ours", "p1", 3, got)
    worker._check("ours", "p1", 3, sorted(got))


def test_a_sequential_write_carries_several_short_channels_one_after_another(
    bench: tuple[ModuleType, ModuleType],
) -> None:
    # Documented as 256 KiB writes: three predictions of 100 fragments (~21 KB each) go out in
    # one write, each whole before the next, not as one small write per channel.
    firehose, _ = bench
    model = firehose._Model()

    def predict(tag: str) -> msgspec.Raw:
        layer = {
            "config": {
                "fields": [
                    {
                        "key": "llm.prediction.maxPredictedTokens",
                        "value": {"checked": True, "value": 100},
                    }
                ]
            }
        }
        param = {
            "history": {"messages": [{"role": "user", "content": tag}]},
            "predictionConfigStack": {"layers": [layer]},
        }
        return msgspec.Raw(msgspec.json.encode(param))

    pump = object.__new__(firehose._Pump)
    pump._open = {}
    streams = [firehose._stream(model, cid, predict(f"p{cid}")) for cid in (1, 2, 3)]
    for stream in streams:
        pump._open[stream.channel_id] = stream
    data = pump._sequential_batch(streams)
    assert pump._open == {}
    contents = re.findall(rb'"content":" (p\d) (\d{7})"', data)
    expected = [(f"p{c}".encode(), b"%07d" % i) for c in (1, 2, 3) for i in range(100)]
    assert contents == expected
    assert data.count(b'"type":"channelClose"') == 3

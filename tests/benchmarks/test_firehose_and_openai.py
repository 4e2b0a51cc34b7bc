"""The simulator's firehose mode and its OpenAI-compatible ``/v1`` endpoints, seen by clients."""

from __future__ import annotations

import openai
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import Simulator

pytestmark = pytest.mark.anyio

LLM = "qwen2.5-7b-instruct"


async def test_firehose_streams_n_tagged_fragments_with_faithful_packets() -> None:
    async with (
        Simulator(firehose=True, record_frames=True) as sim,
        lms.LMStudioClient(sim.base_url) as client,
    ):
        model = await client.llm.model(LLM)
        prediction = model.respond("tag7", config={"max_tokens": 1500})
        contents = [fragment.content async for fragment in prediction]
        result = await prediction.result()
    assert contents == [" tag7"] * 1500
    assert result.content == " tag7" * 1500
    assert result.stats.stop_reason == "maxPredictedTokensReached"
    assert result.stats.predicted_tokens_count == 1500
    packets = [
        f["message"]["type"] if f["type"] == "channelSend" else f["type"]
        for f in sim.frames_sent("llm")
        if f.get("channelId") == sim.predictions[-1].channel_id
    ]
    assert packets == [
        "promptProcessingProgress",
        "promptProcessingProgress",
        *["fragment"] * 1500,
        "success",
        "channelClose",
    ]
    assert sim.predictions[-1].status == "finished"


async def test_firehose_stops_on_cancel() -> None:
    async with Simulator(firehose=True) as sim, lms.LMStudioClient(sim.base_url) as client:
        model = await client.llm.model(LLM)
        prediction = model.respond("x", config={"max_tokens": 5_000_000})
        async for _ in prediction:
            break
        await prediction.cancel()
        await sim.wait_for(lambda: sim.predictions[-1].status != "running", timeout=10)
    assert sim.predictions[-1].status == "cancelled"
    assert sim.predictions[-1].fragments_sent < 5_000_000


async def test_openai_client_lists_models_and_chats_without_firehose() -> None:
    async with Simulator() as sim:
        client = openai.AsyncOpenAI(base_url=f"{sim.http_url}/v1", api_key="lm-studio")
        async with client:
            models = await client.models.list()
            reply = await client.chat.completions.create(
                model=LLM, messages=[{"role": "user", "content": "Hello there"}]
            )
            stream = await client.chat.completions.create(
                model=LLM, messages=[{"role": "user", "content": "Hello there"}], stream=True
            )
            pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            with pytest.raises(openai.NotFoundError, match="not found"):
                await client.chat.completions.create(
                    model="no-such-model", messages=[{"role": "user", "content": "x"}]
                )
    assert LLM in {m.id for m in models.data}
    assert reply.choices[0].message.content == "You said: Hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert "".join(pieces) == "You said: Hello there"


async def test_openai_firehose_streams_max_tokens_chunks() -> None:
    async with Simulator(firehose=True) as sim:
        client = openai.AsyncOpenAI(base_url=f"{sim.http_url}/v1", api_key="lm-studio")
        async with client:
            stream = await client.chat.completions.create(
                model=LLM, messages=[{"role": "user", "content": "t1"}], stream=True, max_tokens=700
            )
            chunks = [c async for c in stream]
    contents = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert contents == [" t1"] * 700
    assert chunks[-1].choices[0].finish_reason == "length"

"""OpenTelemetry spans and metrics (GenAI semantic conventions), with in-memory exporters."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import lmstudio_async as lms
from lmstudio_async.testing import ScriptedReply, Simulator

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.metrics = InMemoryMetricReader()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.meter_provider = MeterProvider(metric_readers=[self.metrics])

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, data point) of every data point of the metric ``name``."""
        data = self.metrics.get_metrics_data()
        if data is None:  # nothing recorded at all
            return []
        return [
            (dict(point.attributes or {}), point)
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


def client_port(client: lms.LMStudioClient) -> int:
    base_url = client._pool.base_url
    assert base_url is not None
    return int(base_url.http.rsplit(":", 1)[1])


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    recorded = Telemetry()
    lms.enable_opentelemetry(
        tracer_provider=recorded.tracer_provider, meter_provider=recorded.meter_provider
    )
    try:
        yield recorded
    finally:
        lms.disable_opentelemetry()


async def test_a_finished_prediction_is_one_client_span_with_genai_attributes(
    telemetry: Telemetry, simulator: Simulator, model: lms.LLM
) -> None:
    result = await model.respond(
        "What is the meaning of life?",
        config={"temperature": 0.3, "max_tokens": 50, "top_p_sampling": 0.9, "top_k_sampling": 40},
    )
    (span,) = telemetry.finished()
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "lmstudio"
    assert attributes["gen_ai.request.model"] == MODEL
    assert attributes["gen_ai.response.model"] == MODEL
    assert attributes["gen_ai.usage.input_tokens"] == result.stats.prompt_tokens_count
    assert attributes["gen_ai.usage.output_tokens"] == result.stats.predicted_tokens_count == 8
    # The conventions' value, LM Studio's own beside it.
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["lmstudio.finish_reason"] == "eosFound"
    assert "gen_ai.system" not in attributes  # deprecated in favour of gen_ai.provider.name
    assert attributes["server.address"] == simulator.host
    assert attributes["server.port"] == simulator.port
    assert attributes["gen_ai.request.temperature"] == 0.3
    assert attributes["gen_ai.request.max_tokens"] == 50
    assert attributes["gen_ai.request.top_p"] == 0.9
    assert attributes["gen_ai.request.top_k"] == 40
    assert "gen_ai.request.stop_sequences" not in attributes  # none were asked for
    # The client's own measurement, and LM Studio's beside it.
    first_chunk = attributes["gen_ai.response.time_to_first_chunk"]
    assert isinstance(first_chunk, float)
    # (Against the duration metric: both are read from the monotonic clock, while span
    # timestamps are wall-clock time, which may be adjusted in between.)
    ((_, duration),) = telemetry.points("gen_ai.client.operation.duration")
    assert 0 < first_chunk < duration.sum
    assert attributes["lmstudio.time_to_first_token"] == result.stats.time_to_first_token_sec
    assert attributes["lmstudio.cancelled"] is False
    # Never what was said.
    assert "meaning of life" not in repr(attributes)


async def test_client_metrics_follow_the_conventions(telemetry: Telemetry, model: lms.LLM) -> None:
    result = await model.respond("Hi")
    usage = {a["gen_ai.token.type"]: p for a, p in telemetry.points("gen_ai.client.token.usage")}
    assert usage["input"].sum == result.stats.prompt_tokens_count
    assert usage["output"].sum == result.stats.predicted_tokens_count
    ((attributes, duration),) = telemetry.points("gen_ai.client.operation.duration")
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.response.model"] == MODEL
    assert "error.type" not in attributes
    assert duration.count == 1
    assert duration.sum > 0
    assert telemetry.points("gen_ai.server.time_to_first_token") == []  # a server metric
    ((attributes, first_chunk),) = telemetry.points("gen_ai.client.operation.time_to_first_chunk")
    (span,) = telemetry.finished()
    assert first_chunk.count == 1
    assert first_chunk.sum == dict(span.attributes or {})["gen_ai.response.time_to_first_chunk"]
    assert attributes["server.port"] == dict(span.attributes or {})["server.port"]


@pytest.mark.parametrize(
    ("config", "scripted", "finish_reason"),
    [
        ({"max_tokens": 3}, {}, "length"),
        ({"stop_strings": ["STOP"]}, {"content": "one two STOP three"}, "stop"),
    ],
)
async def test_finish_reasons_use_the_conventions_values(
    telemetry: Telemetry,
    simulator: Simulator,
    model: lms.LLM,
    config: dict[str, Any],
    scripted: dict[str, Any],
    finish_reason: str,
) -> None:
    if scripted:
        simulator.script(MODEL, ScriptedReply(**scripted))
    result = await model.respond("Talk for a while, please, at some length.", config=config)
    (span,) = telemetry.finished()
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.response.finish_reasons"] == (finish_reason,)
    assert attributes["lmstudio.finish_reason"] == result.stats.stop_reason
    if "stop_strings" in config:
        assert attributes["gen_ai.request.stop_sequences"] == ("STOP",)


async def test_a_prediction_cancelled_with_cancel_is_marked_cancelled(
    telemetry: Telemetry, simulator: Simulator, model: lms.LLM
) -> None:
    story = " ".join(f"word{n}" for n in range(300))
    simulator.script(MODEL, ScriptedReply(content=story, tokens_per_second=200))
    prediction = model.respond("Tell me a story")
    async for _ in prediction:
        await prediction.cancel()
    await prediction.result()
    (span,) = telemetry.finished()
    attributes = dict(span.attributes or {})
    assert attributes["lmstudio.cancelled"] is True
    # The conventions have no value for a stop the user asked for: LM Studio's is kept.
    assert attributes["gen_ai.response.finish_reasons"] == ("userStopped",)
    assert span.status.status_code is StatusCode.UNSET
    # A cancelled prediction says nothing about how fast the model answers.
    assert telemetry.points("gen_ai.client.operation.time_to_first_chunk") == []


async def test_a_cancelled_task_ends_its_span_as_cancelled_not_failed(
    telemetry: Telemetry, simulator: Simulator, model: lms.LLM
) -> None:
    story = " ".join(f"word{n}" for n in range(300))
    simulator.script(MODEL, ScriptedReply(content=story, tokens_per_second=50))
    with anyio.CancelScope() as scope:
        async for _ in model.respond("Tell me a story"):
            scope.cancel()  # the task is cancelled at its next await, mid-stream
    await simulator.wait_for(lambda: simulator.predictions[-1].cancel_received, timeout=10)
    (span,) = telemetry.finished()
    attributes = dict(span.attributes or {})
    assert attributes["lmstudio.cancelled"] is True
    assert "error.type" not in attributes
    assert span.status.status_code is StatusCode.UNSET


async def test_a_break_ends_the_span_when_the_loop_next_runs(
    telemetry: Telemetry, simulator: Simulator, model: lms.LLM
) -> None:
    story = " ".join(f"word{n}" for n in range(300))
    simulator.script(MODEL, ScriptedReply(content=story, tokens_per_second=200))
    prediction = model.respond("Tell me a story")
    async for _ in prediction:
        break
    # A `break` is told from peeking at the next turn of the event loop (see PredictionStream):
    # the span ends then, without waiting for LM Studio to confirm the cancel.
    await asyncio.sleep(0)
    (span,) = telemetry.finished()
    attributes = dict(span.attributes or {})
    assert attributes["lmstudio.cancelled"] is True
    # What was known when the loop left: the fragment that had arrived, and when it did.
    assert attributes["lmstudio.fragments_received"] == 1
    first_chunk = attributes["gen_ai.response.time_to_first_chunk"]
    assert isinstance(first_chunk, float)
    assert first_chunk > 0
    assert telemetry.points("gen_ai.client.operation.time_to_first_chunk") == []
    await prediction.result()  # the partial result: no second span
    assert len(telemetry.finished()) == 1


async def test_a_failed_prediction_has_error_status_and_type(
    telemetry: Telemetry, simulator: Simulator, model: lms.LLM
) -> None:
    simulator.script(MODEL, ScriptedReply(error={"title": "The model crashed"}))
    with pytest.raises(lms.LMStudioServerError):
        await model.respond("Hi")
    (span,) = telemetry.finished()
    assert span.status.status_code is StatusCode.ERROR
    attributes = dict(span.attributes or {})
    assert attributes["error.type"] == "lmstudio_async.LMStudioChannelError"
    assert attributes["lmstudio.cancelled"] is False
    assert [event.name for event in span.events] == ["exception"]
    ((metric_attributes, _),) = telemetry.points("gen_ai.client.operation.duration")
    assert metric_attributes["error.type"] == "lmstudio_async.LMStudioChannelError"


async def test_completion_embedding_and_load_get_their_spans(
    telemetry: Telemetry, client: lms.LMStudioClient
) -> None:
    llm = await client.llm.model(MODEL)
    await llm.complete("Once upon a time")
    embedder = await client.embedding.model("text-embedding-nomic-embed-text-v1.5")
    await embedder.embed("Hello")
    await client.llm.load("google/gemma-3-4b")
    names = [span.name for span in telemetry.finished()]
    assert names == [
        f"text_completion {MODEL}",
        "embeddings text-embedding-nomic-embed-text-v1.5",
        "load_model google/gemma-3-4b",
    ]
    for span in telemetry.finished():
        assert span.kind is SpanKind.CLIENT
        attributes = dict(span.attributes or {})
        assert attributes["gen_ai.provider.name"] == "lmstudio"
        assert attributes["server.port"] == client_port(client)


async def test_a_model_call_that_loads_the_model_records_the_load(
    telemetry: Telemetry, client: lms.LMStudioClient
) -> None:
    started = time.time_ns()
    await client.llm.model("google/gemma-3-4b")  # downloaded, not loaded: LM Studio loads it
    (span,) = telemetry.finished()
    assert span.name == "load_model google/gemma-3-4b"
    assert span.kind is SpanKind.CLIENT
    assert span.start_time is not None
    assert span.start_time >= started
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "load_model"
    assert attributes["gen_ai.request.model"] == "google/gemma-3-4b"
    assert attributes["server.port"] == client_port(client)
    assert attributes["lmstudio.cancelled"] is False
    assert span.status.status_code is not StatusCode.ERROR
    ((metric_attributes, _),) = telemetry.points("gen_ai.client.operation.duration")
    assert metric_attributes["gen_ai.operation.name"] == "load_model"


async def test_a_model_call_that_finds_the_model_loaded_records_no_load(
    telemetry: Telemetry, client: lms.LMStudioClient
) -> None:
    await client.llm.model(MODEL)  # loaded already: LM Studio answers alreadyLoaded
    await client.embedding.model("text-embedding-nomic-embed-text-v1.5")
    assert telemetry.finished() == []
    assert telemetry.points("gen_ai.client.operation.duration") == []


async def test_a_model_call_cancelled_while_loading_records_a_cancelled_load(
    telemetry: Telemetry,
) -> None:
    # The first progress (a quarter) comes after 2 s; the load would end 6 s later.
    async with Simulator(load_duration=8) as sim, lms.LMStudioClient(sim.base_url) as client:
        loading = anyio.Event()
        task = asyncio.create_task(
            client.llm.model("google/gemma-3-4b", on_load_progress=lambda _: loading.set())
        )
        with anyio.fail_after(30):
            await loading.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (span,) = telemetry.finished()
    assert span.name == "load_model google/gemma-3-4b"
    assert span.status.status_code is not StatusCode.ERROR
    assert dict(span.attributes or {})["lmstudio.cancelled"] is True


async def test_a_model_call_for_a_model_not_downloaded_records_the_failed_load(
    telemetry: Telemetry, client: lms.LMStudioClient
) -> None:
    with pytest.raises(lms.LMStudioModelNotFoundError):
        await client.llm.model("no-such-model")
    (span,) = telemetry.finished()
    assert span.name == "load_model no-such-model"
    assert span.status.status_code is StatusCode.ERROR
    attributes = dict(span.attributes or {})
    assert attributes["error.type"] == "lmstudio_async.LMStudioModelNotFoundError"


async def test_nothing_is_recorded_when_telemetry_is_off(model: lms.LLM) -> None:
    recorded = Telemetry()  # providers exist, but nobody enabled the SDK's telemetry
    await model.respond("Hi")
    assert recorded.finished() == []


def test_a_configured_global_tracer_provider_turns_it_on_by_itself() -> None:
    program = textwrap.dedent(
        """
        import anyio
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        import lmstudio_async as lms
        from lmstudio_async.testing import Simulator

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)

        async def main() -> None:
            async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
                model = await client.llm.model("qwen2.5-7b-instruct")
                await model.respond("Hi")

        anyio.run(main)
        print([span.name for span in exporter.get_finished_spans()])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['chat qwen2.5-7b-instruct']"


def test_a_tracer_provider_set_after_a_client_was_created_is_picked_up_by_the_next() -> None:
    program = textwrap.dedent(
        """
        import anyio
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        import lmstudio_async as lms
        from lmstudio_async.testing import Simulator

        async def main() -> None:
            async with Simulator() as sim:
                # A client created before the program configured OpenTelemetry...
                async with lms.LMStudioClient(sim.base_url) as client:
                    await (await client.llm.model("qwen2.5-7b-instruct")).respond("Hi")
                exporter = InMemorySpanExporter()
                provider = TracerProvider()
                provider.add_span_processor(SimpleSpanProcessor(exporter))
                trace.set_tracer_provider(provider)
                # ...does not keep the next one from reporting.
                async with lms.LMStudioClient(sim.base_url) as client:
                    await (await client.llm.model("qwen2.5-7b-instruct")).respond("Hi")
                print([span.name for span in exporter.get_finished_spans()])

        anyio.run(main)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['chat qwen2.5-7b-instruct']"


def test_without_the_otel_extra_enabling_says_how_to_get_it() -> None:
    program = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
        import lmstudio_async as lms
        try:
            lms.enable_opentelemetry()
        except lms.LMStudioUsageError as exc:
            print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    # Not on PyPI: the advice must work from a clone.
    assert "`uv sync --extra otel` or `pip install '.[otel]'`" in done.stdout
    assert "lmstudio-async[otel]" not in done.stdout

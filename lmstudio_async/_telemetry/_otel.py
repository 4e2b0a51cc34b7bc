"""The OpenTelemetry backend: GenAI semantic-convention spans and client metrics."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .._errors import LMStudioCancelledError
from .._version import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

    from ..types.kv import KVField
    from ..types.prediction import PredictionResult

__all__ = ["OpenTelemetry"]

PROVIDER = "lmstudio"

# The buckets the GenAI semantic conventions advise for these histograms.
_TOKEN_BUCKETS = [4**n for n in range(14)]  # 1 .. 67,108,864 tokens
_SECONDS_BUCKETS = [0.01 * 2**n for n in range(14)]  # 0.01 .. 81.92 s


class OpenTelemetry:
    """Creates spans and records metrics through the given (or global) providers."""

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.tracer = trace.get_tracer("lmstudio_async", __version__, tracer_provider)
        meter = metrics.get_meter("lmstudio_async", __version__, meter_provider)
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self.time_to_first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk, from when the request was issued.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )

    def __repr__(self) -> str:
        return f"<OpenTelemetry tracer={self.tracer!r}>"

    def prediction(
        self, operation: str, request_model: str, fields: Sequence[KVField], source: object
    ) -> _PredictionSpan:
        return _PredictionSpan(self, operation, request_model, fields, source)

    @contextlib.contextmanager
    def operation(self, operation: str, request_model: str, source: object) -> Iterator[None]:
        attributes = _base_attributes(operation, request_model, source)
        started = time.perf_counter()
        with self.tracer.start_as_current_span(
            f"{operation} {request_model}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield
            except BaseException as exc:
                _record_error(span, exc, attributes)
                raise
            else:
                span.set_attribute("lmstudio.cancelled", False)
            finally:
                self.duration.record(time.perf_counter() - started, attributes)

    @contextlib.contextmanager
    def possible_operation(
        self, operation: str, request_model: str, source: object
    ) -> Iterator[Callable[[], None]]:
        attributes = _base_attributes(operation, request_model, source)
        started, started_ns = time.perf_counter(), time.time_ns()
        span: Span | None = None

        def begin() -> None:
            nonlocal span
            if span is None:
                # Backdated to the request: the wait before LM Studio said it would load
                # (finding the model, evicting a just-in-time one) is part of the load.
                span = self.tracer.start_span(
                    f"{operation} {request_model}",
                    kind=SpanKind.CLIENT,
                    attributes=attributes,
                    start_time=started_ns,
                    record_exception=False,
                    set_status_on_exception=False,
                )

        try:
            yield begin
        except BaseException as exc:
            if not _is_cancellation(exc):
                begin()  # a failure is reported even before the operation was known needed
            if span is not None:
                _record_error(span, exc, attributes)
            raise
        else:
            if span is not None:
                span.set_attribute("lmstudio.cancelled", False)
        finally:
            if span is not None:
                self.duration.record(time.perf_counter() - started, attributes)
                span.end()


class _PredictionSpan:
    """One prediction's span, started when it first talks to LM Studio."""

    __slots__ = (
        "_attributes",
        "_ended",
        "_first_chunk_after",
        "_otel",
        "_request",
        "_span",
        "_started",
        "_title",
    )

    def __init__(
        self,
        otel: OpenTelemetry,
        operation: str,
        request_model: str,
        fields: Sequence[KVField],
        source: object,
    ) -> None:
        self._otel = otel
        self._title = f"{operation} {request_model}"
        # Metrics carry the low-cardinality attributes only; the span also gets the request's
        # sampling settings.
        self._attributes = _base_attributes(operation, request_model, source)
        self._request = _request_attributes(fields)
        self._span: Span | None = None
        self._started = 0.0
        self._first_chunk_after: float | None = None
        self._ended = False

    def __repr__(self) -> str:
        return f"<PredictionSpan {self._title!r} started={self._span is not None}>"

    def started(self) -> None:
        if self._span is None:
            self._started = time.perf_counter()
            self._span = self._otel.tracer.start_span(
                self._title,
                kind=SpanKind.CLIENT,
                attributes={**self._attributes, **self._request},
            )

    def first_chunk(self) -> None:
        if self._first_chunk_after is None and self._span is not None:
            self._first_chunk_after = time.perf_counter() - self._started
            self._span.set_attribute("gen_ai.response.time_to_first_chunk", self._first_chunk_after)

    def ended(
        self, result: PredictionResult[Any] | None, error: BaseException | None, fragments: int = 0
    ) -> None:
        if self._ended:  # e.g. abandoned by a `break`, then its partial result awaited
            return
        self._ended = True
        self.started()  # a prediction that failed before it could start still gets its span
        span = self._span
        assert span is not None
        duration = time.perf_counter() - self._started
        attributes = dict(self._attributes)
        otel = self._otel
        if result is not None:
            stats = result.stats
            attributes["gen_ai.response.model"] = result.model_info.model_key
            span.set_attribute("gen_ai.response.model", result.model_info.model_key)
            span.set_attribute(
                "gen_ai.response.finish_reasons", [_finish_reason(stats.stop_reason)]
            )
            span.set_attribute("lmstudio.finish_reason", str(stats.stop_reason))
            span.set_attribute("lmstudio.cancelled", stats.stop_reason == "userStopped")
            for kind, count in (
                ("input", stats.prompt_tokens_count),
                ("output", stats.predicted_tokens_count),
            ):
                if count is not None:
                    span.set_attribute(f"gen_ai.usage.{kind}_tokens", count)
                    otel.token_usage.record(count, {**attributes, "gen_ai.token.type": kind})
            if stats.time_to_first_token_sec is not None:
                span.set_attribute("lmstudio.time_to_first_token", stats.time_to_first_token_sec)
        else:
            # Ended before LM Studio's result (a `break`, a cancelled task, a lost connection):
            # what had arrived is all that is known.
            span.set_attribute("lmstudio.fragments_received", fragments)
        if error is not None:
            _record_error(span, error, attributes)
        elif self._first_chunk_after is not None and not (
            result is not None and result.stats.stop_reason == "userStopped"
        ):
            # Only predictions that ran to their end: a cancelled one says nothing about speed.
            otel.time_to_first_chunk.record(self._first_chunk_after, attributes)
        otel.duration.record(duration, attributes)
        span.end()


# LM Studio's stop reasons in the GenAI conventions' finish-reason values; the ones the
# conventions have no value for (a stop asked by the user, an unloaded model) stay as they are.
_FINISH_REASONS: dict[str, str] = {
    "eosFound": "stop",
    "stopStringFound": "stop",
    "maxPredictedTokensReached": "length",
    "contextLengthReached": "length",
    "toolCalls": "tool_call",
    "failed": "error",
}


def _finish_reason(stop_reason: str) -> str:
    return _FINISH_REASONS.get(stop_reason, stop_reason)


# LM Studio's prediction settings that have a gen_ai.request.* attribute.
_REQUEST_FIELDS: dict[str, str] = {
    "llm.prediction.temperature": "gen_ai.request.temperature",
    "llm.prediction.maxPredictedTokens": "gen_ai.request.max_tokens",
    "llm.prediction.topPSampling": "gen_ai.request.top_p",
    "llm.prediction.topKSampling": "gen_ai.request.top_k",
    "llm.prediction.stopStrings": "gen_ai.request.stop_sequences",
}


def _request_attributes(fields: Sequence[KVField]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for field in fields:
        name = _REQUEST_FIELDS.get(field.key)
        if name is None:
            continue
        value = field.value
        if isinstance(value, dict):  # a setting that can be off: {"checked": ..., "value": ...}
            if not value.get("checked"):
                continue
            value = value.get("value")
        if isinstance(value, list):
            if value:  # an empty list clears the stop strings: nothing was requested
                attributes[name] = [str(v) for v in value]
        elif isinstance(value, int | float) and not isinstance(value, bool):
            attributes[name] = value
    return attributes


def _server(source: object) -> tuple[str, int] | None:
    """The host and port of LM Studio as the client resolved them (``None`` if not yet)."""
    base_url = getattr(getattr(source, "_pool", None), "base_url", None)
    http = getattr(base_url, "http", None)
    if not isinstance(http, str):
        return None
    parts = urlsplit(http)
    if parts.hostname is None:
        return None
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def _base_attributes(operation: str, request_model: str, source: object) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": PROVIDER,
        "gen_ai.request.model": request_model,
    }
    server = _server(source)
    if server is not None:
        attributes["server.address"], attributes["server.port"] = server
    return attributes


def _record_error(span: Span, error: BaseException, attributes: dict[str, Any]) -> None:
    if _is_cancellation(error):
        # Given up by the caller (a break, a cancelled task, a timeout around it): not a
        # failure of the operation.
        span.set_attribute("lmstudio.cancelled", True)
        return
    attributes["error.type"] = _error_type(error)
    span.set_attribute("error.type", attributes["error.type"])
    span.set_attribute("lmstudio.cancelled", False)
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, type(error).__name__))


def _error_type(error: BaseException) -> str:
    return f"{type(error).__module__}.{type(error).__qualname__}"


def _is_cancellation(error: BaseException) -> bool:
    return isinstance(error, LMStudioCancelledError | asyncio.CancelledError)

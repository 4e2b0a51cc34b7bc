"""The OpenTelemetry backend: GenAI semantic-convention spans and client metrics."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .._errors import LMStudioCancelledError
from .._version import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

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
        self.time_to_first_token = meter.create_histogram(
            "gen_ai.server.time_to_first_token",
            unit="s",
            description="Time to generate the first token, as LM Studio measured it.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )

    def __repr__(self) -> str:
        return f"<OpenTelemetry tracer={self.tracer!r}>"

    def prediction(self, operation: str, request_model: str) -> _PredictionSpan:
        return _PredictionSpan(self, operation, request_model)

    @contextlib.contextmanager
    def operation(self, operation: str, request_model: str) -> Iterator[None]:
        attributes = _base_attributes(operation, request_model)
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


class _PredictionSpan:
    """One prediction's span, started when it first talks to LM Studio."""

    __slots__ = ("_attributes", "_ended", "_otel", "_span", "_started", "_title")

    def __init__(self, otel: OpenTelemetry, operation: str, request_model: str) -> None:
        self._otel = otel
        self._title = f"{operation} {request_model}"
        self._attributes = _base_attributes(operation, request_model)
        self._span: Span | None = None
        self._started = 0.0
        self._ended = False

    def __repr__(self) -> str:
        return f"<PredictionSpan {self._title!r} started={self._span is not None}>"

    def started(self) -> None:
        if self._span is None:
            self._started = time.perf_counter()
            self._span = self._otel.tracer.start_span(
                self._title, kind=SpanKind.CLIENT, attributes=self._attributes
            )

    def ended(self, result: PredictionResult[Any] | None, error: BaseException | None) -> None:
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
            span.set_attribute("gen_ai.response.finish_reasons", [str(stats.stop_reason)])
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
                otel.time_to_first_token.record(stats.time_to_first_token_sec, attributes)
        if error is not None:
            _record_error(span, error, attributes)
        otel.duration.record(duration, attributes)
        span.end()


def _base_attributes(operation: str, request_model: str) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": PROVIDER,
        "gen_ai.system": PROVIDER,  # the older conventions' name, still read by many backends
        "gen_ai.request.model": request_model,
    }


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

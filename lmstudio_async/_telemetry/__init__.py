"""Where the SDK reports operations to telemetry; nothing here imports OpenTelemetry.

Telemetry is off by default: :data:`active` is ``None``, and each hook point costs one global
lookup per operation (never per fragment). :func:`enable_opentelemetry` switches it on; so does
opening a client in a program whose global OpenTelemetry tracer provider was configured.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from ..types.prediction import PredictionResult

__all__ = [
    "PredictionObserver",
    "Telemetry",
    "autodetect",
    "disable_opentelemetry",
    "enable_opentelemetry",
    "operation",
    "prediction",
]


class PredictionObserver(Protocol):
    """Follows one prediction: :meth:`started` when it starts talking to LM Studio (may be
    called again: only the first call counts), :meth:`ended` once, with its result or error."""

    def started(self) -> None: ...

    def ended(self, result: PredictionResult[Any] | None, error: BaseException | None) -> None: ...


class Telemetry(Protocol):
    """What a telemetry backend implements."""

    def prediction(self, operation: str, request_model: str) -> PredictionObserver: ...

    def operation(
        self, operation: str, request_model: str
    ) -> contextlib.AbstractContextManager[None]: ...


active: Telemetry | None = None
_autodetected = False


def prediction(operation: str, request_model: str) -> PredictionObserver | None:
    """An observer for a new prediction, or ``None`` when telemetry is off."""
    return None if active is None else active.prediction(operation, request_model)


@contextlib.contextmanager
def operation(name: str, request_model: str) -> Iterator[None]:
    """Report one request/response operation (an embedding, a model load) around the block."""
    if active is None:
        yield
        return
    with active.operation(name, request_model):
        yield


def enable_opentelemetry(
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> None:
    """Report predictions, embeddings and model loads to OpenTelemetry.

    Follows the OpenTelemetry GenAI semantic conventions: a ``CLIENT`` span per operation
    named ``"{gen_ai.operation.name} {gen_ai.request.model}"`` (``chat`` for ``respond()``,
    ``text_completion`` for ``complete()``, ``embeddings``; model loads are
    ``load_model``) with the request and response model, input and output tokens, finish
    reason, LM Studio's time to first token (``lmstudio.time_to_first_token``, seconds) and
    ``lmstudio.cancelled``; a failed operation has status ``ERROR`` and ``error.type``. The
    metrics are the conventions' ``gen_ai.client.token.usage`` (``{token}``),
    ``gen_ai.client.operation.duration`` (s) and ``gen_ai.server.time_to_first_token`` (s,
    as LM Studio measured it).

    ``tracer_provider`` / ``meter_provider`` default to OpenTelemetry's global ones. Needs the
    ``otel`` extra (from a clone: ``uv sync --extra otel`` or ``pip install '.[otel]'``); without
    it this raises
    :class:`LMStudioUsageError` saying so. No prompt or reply text is ever recorded.
    """
    global active
    try:
        from ._otel import OpenTelemetry
    except ImportError as exc:
        from .._errors import LMStudioUsageError

        raise LMStudioUsageError(
            "enable_opentelemetry() needs the OpenTelemetry API: install the otel extra from "
            "a clone of lmstudio_async, `uv sync --extra otel` or `pip install '.[otel]'`."
        ) from exc
    active = OpenTelemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)


def disable_opentelemetry() -> None:
    """Stop reporting (operations already running still end their spans)."""
    global active
    active = None


def autodetect() -> None:
    """Enable OpenTelemetry once if the program configured a global tracer provider.

    Called when a client is created. Only looks when the program already imported
    ``opentelemetry.trace``: a program without OpenTelemetry pays nothing, not even an import.
    """
    global _autodetected
    if _autodetected or active is not None:
        return
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return
    _autodetected = True
    provider = trace.get_tracer_provider()
    # Until the program sets one, the global provider is a proxy (or a no-op) placeholder.
    if type(provider).__name__ not in {"ProxyTracerProvider", "NoOpTracerProvider"}:
        enable_opentelemetry()

"""Where the SDK reports operations to telemetry; nothing here imports OpenTelemetry.

Telemetry is off by default: ``active`` is ``None``, and each hook point costs one global
lookup per operation (never per fragment). ``enable_opentelemetry`` switches it on; so does
creating a client in a program whose global OpenTelemetry tracer provider is configured.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from ..types.kv import KVField
    from ..types.prediction import PredictionResult

__all__ = [
    "PredictionObserver",
    "Telemetry",
    "autodetect",
    "disable_opentelemetry",
    "enable_opentelemetry",
    "operation",
    "possible_operation",
    "prediction",
]


class PredictionObserver(Protocol):
    """Follows one prediction: ``started`` when it starts talking to LM Studio (may be called
    again: only the first call counts), ``first_chunk`` when its first fragment arrives,
    ``ended`` once, with its result or error (``fragments``: how many fragments had arrived,
    for a prediction ended before its result)."""

    def started(self) -> None: ...

    def first_chunk(self) -> None: ...

    def ended(
        self, result: PredictionResult[Any] | None, error: BaseException | None, fragments: int = 0
    ) -> None: ...


class Telemetry(Protocol):
    """What a telemetry backend implements."""

    def prediction(
        self, operation: str, request_model: str, fields: Sequence[KVField], source: object
    ) -> PredictionObserver: ...

    def operation(
        self, operation: str, request_model: str, source: object
    ) -> contextlib.AbstractContextManager[None]: ...

    def possible_operation(
        self, operation: str, request_model: str, source: object
    ) -> contextlib.AbstractContextManager[Callable[[], None]]: ...


active: Telemetry | None = None
# Set by disable_opentelemetry(): the program said no, so autodetection must not say yes.
_disabled = False


def prediction(
    operation: str, request_model: str, fields: Sequence[KVField], source: object
) -> PredictionObserver | None:
    """An observer for a new prediction, or ``None`` when telemetry is off.

    ``fields``: the request's prediction config (for ``gen_ai.request.*``); ``source``: the
    client, for ``server.address`` / ``server.port``. Only read when telemetry is on.
    """
    return None if active is None else active.prediction(operation, request_model, fields, source)


@contextlib.contextmanager
def operation(name: str, request_model: str, source: object) -> Iterator[None]:
    """Report one request/response operation (an embedding, a model load) around the block."""
    if active is None:
        yield
        return
    with active.operation(name, request_model, source):
        yield


def _not_reported() -> None:
    pass


@contextlib.contextmanager
def possible_operation(
    name: str, request_model: str, source: object
) -> Iterator[Callable[[], None]]:
    """Report an operation that may turn out not to be needed, e.g. the load in ``getOrLoad``
    of a model that is already loaded.

    The block calls the yielded ``begin()`` as soon as it knows the operation happens (LM
    Studio started loading); only then is it reported, timed from the start of the block. A
    block that fails (other than by cancellation) reports the failed operation even if it
    never called ``begin()``; one that ends normally or is cancelled before that reports
    nothing.
    """
    if active is None:
        yield _not_reported
        return
    with active.possible_operation(name, request_model, source) as begin:
        yield begin


def enable_opentelemetry(
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> None:
    """Report predictions, embeddings and model loads to OpenTelemetry.

    Follows the OpenTelemetry GenAI semantic conventions: a ``CLIENT`` span per operation
    named ``"{gen_ai.operation.name} {gen_ai.request.model}"`` (``chat`` for ``respond()``,
    ``text_completion`` for ``complete()``, ``embeddings``; model loads are ``load_model``,
    for ``load()`` and for a ``model(key)`` that had to load the model, not for one that found
    it loaded)
    with ``gen_ai.provider.name`` (``lmstudio``), ``server.address`` / ``server.port``, the
    request and response model, the request's sampling settings
    (``gen_ai.request.temperature``, ``max_tokens``, ``top_p``, ``top_k``,
    ``stop_sequences``), input and output tokens, ``gen_ai.response.finish_reasons`` in the
    conventions' values (``stop``, ``length``, ``tool_call``, ``error``; LM Studio's own reason
    is in ``lmstudio.finish_reason``), the time to the first chunk as this client saw it
    (``gen_ai.response.time_to_first_chunk``, seconds), LM Studio's own measurement
    (``lmstudio.time_to_first_token``) and ``lmstudio.cancelled``. A prediction left with
    ``break`` ends its span at once with what is known then (``lmstudio.fragments_received``).
    A failed operation has status ``ERROR`` and ``error.type``. The metrics are the
    conventions' client metrics: ``gen_ai.client.token.usage`` (``{token}``),
    ``gen_ai.client.operation.duration`` (s) and
    ``gen_ai.client.operation.time_to_first_chunk`` (s, for predictions that finished).
    Embeddings report no token usage: LM Studio's ``embedString`` does not return a count,
    and the conventions forbid guessing one.

    ``tracer_provider`` / ``meter_provider`` default to OpenTelemetry's global ones. Needs the
    ``otel`` extra (from a clone: ``uv sync --extra otel`` or ``pip install '.[otel]'``);
    without it this raises ``LMStudioUsageError`` saying so. No prompt or reply text is ever
    recorded.
    """
    global active, _disabled
    try:
        from ._otel import OpenTelemetry
    except ImportError as exc:
        from .._errors import LMStudioUsageError

        raise LMStudioUsageError(
            "enable_opentelemetry() needs the OpenTelemetry API: install the otel extra from "
            "a clone of lmstudio_async, `uv sync --extra otel` or `pip install '.[otel]'`."
        ) from exc
    active = OpenTelemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
    _disabled = False


def disable_opentelemetry() -> None:
    """Stop reporting (operations already running still end their spans).

    Also keeps clients created later from switching it on by themselves (see
    ``enable_opentelemetry``); calling that again switches it back on.
    """
    global active, _disabled
    active = None
    _disabled = True


def autodetect() -> None:
    """Enable OpenTelemetry if the program has configured a global tracer provider by now.

    Called each time a client is created, so a provider set after an earlier client was
    created is still picked up by the next one. Only looks when the program already imported
    ``opentelemetry.trace``: a program without OpenTelemetry pays nothing, not even an import;
    otherwise the check is one function call and a type-name comparison.
    """
    if active is not None or _disabled:
        return
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return
    provider = trace.get_tracer_provider()
    # Until the program sets one, the global provider is a proxy (or a no-op) placeholder.
    if type(provider).__name__ not in {"ProxyTracerProvider", "NoOpTracerProvider"}:
        enable_opentelemetry()

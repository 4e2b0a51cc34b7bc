"""What goes into a batch (requests) and what comes out (outcomes, progress): plain data."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from ..types.chat import Chat
from ..types.prediction import PredictionResult

__all__ = ["BatchOutcome", "BatchProgress", "BatchRequest", "BatchTask", "to_jsonable"]

BatchTask = Literal["respond", "complete", "embed"]
"""Which model method each item runs: ``LLM.respond``, ``LLM.complete`` or
``EmbeddingModel.embed``."""


@dataclasses.dataclass(frozen=True)
class BatchRequest:
    """One batch item with options of its own.

    ``input`` is what the task takes: a prompt string (``respond``, ``complete``, ``embed``), or
    a chat history (:class:`Chat`, a list of message dicts; ``respond`` only). ``config`` is a
    prediction config for this item: a dict is merged over the run's ``config`` dict (its keys
    win), a :class:`PredictionConfig` replaces it. Plain inputs (not wrapped in a
    ``BatchRequest``) use the run's config.
    """

    input: Any
    config: Any = None


@dataclasses.dataclass(frozen=True)
class BatchOutcome:
    """How one item ended.

    ``index`` is the item's position in the input (0-based), ``input`` the item as given.
    Exactly one of ``result`` and ``error`` is set: ``result`` is a :class:`PredictionResult`
    (``respond``/``complete``; its ``parsed`` holds the ``response_format`` value) or the
    embedding vector ``list[float]`` (``embed``); ``error`` is the exception that ended the item
    (an :class:`LMStudioError` for anything LM Studio or the SDK reported).

    ``handle`` is the position, in the ``models`` given to :func:`run_batch`, of the model
    handle that ran the last attempt. ``attempts`` counts the attempts (1 when the first one
    settled it); ``retried`` describes each earlier attempt that failed over to another handle
    because its connection dropped, as ``"handle N: <error>"``.
    """

    index: int
    input: Any
    result: Any = None
    error: BaseException | None = None
    handle: int = 0
    attempts: int = 1
    retried: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the item produced a result."""
        return self.error is None

    def to_record(self) -> dict[str, Any]:
        """The JSON-ready line written to a batch's output file.

        Always ``index``, ``handle``, ``attempts``; ``input`` when it is JSON-able; then for a
        prediction ``content``, ``stop_reason``, ``predicted_tokens`` (and ``parsed`` when it
        is not the plain text), for an embedding ``embedding``, for a failure ``error`` (the
        message) and ``error_type`` (the exception class name); ``retried`` when non-empty.
        """
        record: dict[str, Any] = {"index": self.index}
        jsonable = to_jsonable(self.input)
        if jsonable is not None:
            record["input"] = jsonable
        record["handle"] = self.handle
        record["attempts"] = self.attempts
        if self.retried:
            record["retried"] = list(self.retried)
        if self.error is not None:
            record["error"] = " ".join(str(self.error).split()) or type(self.error).__name__
            record["error_type"] = type(self.error).__name__
        elif isinstance(self.result, PredictionResult):
            record["content"] = self.result.content
            if self.result.parsed is not self.result.content:
                record["parsed"] = to_jsonable(self.result.parsed)
            record["stop_reason"] = self.result.stats.stop_reason
            record["predicted_tokens"] = self.result.stats.predicted_tokens_count
        else:
            record["embedding"] = self.result
        return record


@dataclasses.dataclass
class BatchProgress:
    """Live counters of a running batch (``BatchRun.progress``), updated as items move.

    ``total`` is the number of input items when the input has a length, else ``None``.
    ``skipped`` items were already in the output file of a resumed run and are not run again.
    ``done`` counts items finished in this run, ``failed`` of which ended with an error;
    ``in_flight`` are running now; ``retries`` counts failovers after a dropped connection.
    """

    total: int | None = None
    skipped: int = 0
    done: int = 0
    failed: int = 0
    in_flight: int = 0
    retries: int = 0
    started: float = dataclasses.field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def elapsed(self) -> float:
        """Seconds since the run started (until it finished, once it has)."""
        end = time.monotonic() if self.finished is None else self.finished
        return end - self.started

    @property
    def rate(self) -> float:
        """Items finished per second in this run (skipped ones not counted)."""
        return self.done / max(self.elapsed, 1e-9)

    @property
    def succeeded(self) -> int:
        """Items finished with a result in this run."""
        return self.done - self.failed

    def __str__(self) -> str:
        total = "?" if self.total is None else str(self.total)
        parts = [f"{self.skipped + self.done}/{total} done"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        parts.append(f"{self.in_flight} in flight")
        if self.retries:
            parts.append(f"{self.retries} retried")
        parts.append(f"{self.rate:.1f}/s")
        return ", ".join(parts)


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON types, or ``None`` when it has no JSON form.

    A :class:`Chat` becomes its message list; pydantic models their ``model_dump()``; msgspec
    structs, dataclasses and the builtins what ``msgspec.to_builtins`` makes of them.
    """
    if isinstance(value, BatchRequest):
        request: dict[str, Any] = {"input": to_jsonable(value.input)}
        if value.config is not None:
            request["config"] = to_jsonable(value.config)
        return request
    if isinstance(value, Chat):
        return msgspec.to_builtins(value.to_wire())["messages"]
    try:
        return msgspec.to_builtins(value, enc_hook=_enc_hook)
    except (TypeError, msgspec.EncodeError):
        return None


def _enc_hook(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)  # pydantic models, without importing pydantic
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} has no JSON form")

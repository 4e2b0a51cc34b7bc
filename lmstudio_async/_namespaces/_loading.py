"""Driving the model-loading channels (``loadModel``, ``getOrLoad``) and fanning out RPCs.

Both loading channels report progress, end with the loaded instance's info, and are cancelled
by abandoning the channel (which sends ``{"type":"cancel"}``). What differs is only the packet
vocabulary, so one driver serves both (PROTOCOL.md §3.9, §3.10).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio
import msgspec

from .._errors import LMStudioProtocolError, LMStudioServerError, LMStudioUsageError
from .._mux import Channel, ChannelClosed
from .._prediction._callbacks import MaybeAwaitable, invoke
from .._protocol.packets import (
    GET_OR_LOAD_TYPES,
    LOAD_MODEL_TYPES,
    AlreadyLoaded,
    GetOrLoadProgress,
    GetOrLoadSuccess,
    LoadProgress,
    LoadSuccess,
    StartLoading,
    UnloadingOtherJITModel,
    decode_packet,
    get_or_load_packets,
    load_model_packets,
)
from ..types.models import EmbeddingModelInstanceInfo, LLMInstanceInfo

__all__ = [
    "BatchProgressCallback",
    "ProgressCallback",
    "ProgressReporter",
    "check_max_concurrency",
    "domain_mismatch_error",
    "drive_load",
    "map_bounded",
]

InfoT = TypeVar("InfoT", LLMInstanceInfo, EmbeddingModelInstanceInfo)
ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

ProgressCallback = Callable[[float], MaybeAwaitable]
"""Load progress: called with floats from 0.0 to 1.0 (plain or coroutine function)."""

BatchProgressCallback = Callable[[int, int], MaybeAwaitable]
"""Batch progress: called with ``(done, total)`` after each item (plain or coroutine function)."""

_OTHER = {"llm": "embedding", "embedding": "llm"}
_KIND = {"llm": "an LLM", "embedding": "an embedding model"}


class ProgressReporter:
    """Forward load progress so the caller sees it only move forward and always end at 1.0.

    Servers may repeat or reorder progress values (the official Python SDK ignores backward
    steps); callers drawing a progress bar should not have to.
    """

    __slots__ = ("_callback", "_last")

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self._last = -1.0

    async def report(self, value: float) -> None:
        if self._callback is None:
            return
        value = min(max(float(value), 0.0), 1.0)
        if value <= self._last:
            return
        self._last = value
        await invoke(self._callback, value)

    async def finish(self) -> None:
        await self.report(1.0)


def domain_mismatch_error(namespace: str, model_key: str) -> LMStudioUsageError:
    other = _OTHER.get(namespace, "other")
    kind, other_kind = _KIND.get(namespace, namespace), _KIND.get(other, other)
    return LMStudioUsageError(
        f"{model_key!r} is not {kind} but {other_kind}: use "
        f"client.{other}.model({model_key!r}) or client.{other}.load({model_key!r})."
    )


def _is_domain_mismatch(exc: LMStudioServerError) -> bool:
    return exc.code == "generic.domainMismatch"


async def drive_load(
    channel: Channel,
    *,
    namespace: str,
    model_key: str,
    info_type: type[InfoT],
    on_progress: ProgressCallback | None,
    on_load_start: Callable[[], None] | None = None,
) -> InfoT:
    """Read a ``loadModel`` or ``getOrLoad`` channel to its end and return the instance info.

    ``on_load_start`` is called when ``getOrLoad`` turns out to load the model (never when LM
    Studio answers that it is already loaded). Any way of leaving early (cancellation of the
    caller, a failing callback, a bad packet) abandons the channel, which tells the server to
    stop loading.
    """
    get_or_load = channel.endpoint == "getOrLoad"
    decoder: msgspec.json.Decoder[Any] = get_or_load_packets if get_or_load else load_model_packets
    known = GET_OR_LOAD_TYPES if get_or_load else LOAD_MODEL_TYPES
    progress = ProgressReporter(on_progress)
    try:
        while True:
            try:
                raw = await channel.next()
            except ChannelClosed:
                raise LMStudioProtocolError(
                    f"LM Studio closed the '{channel.endpoint}' channel for {model_key!r} "
                    "without reporting a loaded model."
                ) from None
            except LMStudioServerError as exc:
                if _is_domain_mismatch(exc):
                    raise domain_mismatch_error(namespace, model_key) from exc
                raise
            try:
                packet = decode_packet(decoder, raw, known)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise LMStudioProtocolError(
                    f"LM Studio sent a '{channel.endpoint}' packet this client cannot read: {exc}"
                ) from exc
            if on_load_start is not None and isinstance(packet, _LOADING):
                on_load_start()
            if isinstance(packet, LoadSuccess | GetOrLoadSuccess | AlreadyLoaded):
                if not isinstance(packet.info, info_type):
                    raise domain_mismatch_error(namespace, model_key)
                if not isinstance(packet, AlreadyLoaded):
                    await progress.finish()
                return packet.info
            if isinstance(packet, LoadProgress | GetOrLoadProgress):
                await progress.report(packet.progress)
            # `resolved`, `startLoading`, `unloadingOtherJITModel` and packet types from newer
            # servers carry nothing the caller waits for.
    except BaseException:
        channel.abandon()
        raise


# getOrLoad packets that mean LM Studio is loading the model (not answering from a loaded one).
_LOADING = (StartLoading, UnloadingOtherJITModel, GetOrLoadProgress, GetOrLoadSuccess)


def check_max_concurrency(max_concurrency: object) -> int:
    if (
        isinstance(max_concurrency, bool)
        or not isinstance(max_concurrency, int)
        or max_concurrency < 1
    ):
        raise LMStudioUsageError(
            f"max_concurrency must be an integer of at least 1 (how many requests may be in "
            f"flight at once), got {max_concurrency!r}."
        )
    return max_concurrency


async def map_bounded(
    function: Callable[[ItemT], Any],
    items: Sequence[ItemT],
    *,
    max_concurrency: int,
    on_done: BatchProgressCallback | None = None,
) -> list[Any]:
    """``[await function(item) for item in items]`` with at most ``max_concurrency`` in flight.

    Results keep the input order. The first failure cancels the remaining work and is raised
    as is (not wrapped in an exception group). ``on_done(done, total)`` runs once per finished
    item, never concurrently with itself, with ``done`` counting up to ``total``.
    """
    total = len(items)
    results: list[Any] = [None] * total
    pending = iter(enumerate(items))
    failure: list[BaseException] = []
    done = 0
    report_lock = anyio.Lock()
    cancelled = anyio.get_cancelled_exc_class()

    # A fixed pool of workers pulling from one iterator bounds concurrency exactly like a
    # CapacityLimiter would, without parking one task per item on the limiter.
    async def worker(cancel_scope: anyio.CancelScope) -> None:
        nonlocal done
        try:
            for index, item in pending:
                results[index] = await function(item)
                if on_done is not None:
                    async with report_lock:
                        done += 1
                        await invoke(on_done, done, total)
        except cancelled:
            raise
        except BaseException as exc:  # KeyboardInterrupt and the user's own control flow too
            if not failure:
                failure.append(exc)
            cancel_scope.cancel()

    async with anyio.create_task_group() as task_group:
        for _ in range(min(max_concurrency, total)):
            task_group.start_soon(worker, task_group.cancel_scope)
    if failure:
        raise failure[0]
    return results

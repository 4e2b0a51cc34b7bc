"""``run_batch``: many inputs over one or more model handles, outcomes as they complete.

Scheduling, in one paragraph: each handle gets a *lane* of ``concurrency`` worker tasks. The
input is read lazily (a generator of a million prompts is never materialised): a plain
iterable by the worker that needs an item, an async one by a reader task one item ahead, so a
slow async input blocks only the reader. A worker takes a retry first, else the next item,
runs it on its lane's handle and reports the outcome. An attempt whose connection dropped goes
back to the retry list marked with the lane it failed on; a worker of any *other* lane takes
it (the failed lane only when every lane has failed it), and the failed lane pauses briefly
before taking more work, so a dead host does not eat the whole batch's retries. Retries never
wait for the input.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
    Sized,
)
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._errors import (
    LMStudioAuthenticationError,
    LMStudioClientClosedError,
    LMStudioConnectionError,
    LMStudioError,
    LMStudioUsageError,
)
from .._namespaces import LLM, EmbeddingModel
from ._items import BatchOutcome, BatchProgress, BatchRequest, BatchTask, to_jsonable
from ._jsonl import JsonlOutput, encodable

__all__ = ["DEFAULT_CONCURRENCY", "BatchRun", "run_batch"]

DEFAULT_CONCURRENCY = 4
"""Predictions per handle when LM Studio does not say how many the model runs in parallel
(LM Studio's own default for ``max_parallel_predictions`` is 4)."""

# After a dropped connection a lane waits before taking new work: 0.25 s doubling to 5 s while
# it keeps failing, long enough for the client to reconnect, short enough to rejoin quickly.
_COOLDOWN_FIRST = 0.25
_COOLDOWN_MAX = 5.0

ModelHandleLike = LLM | EmbeddingModel


class _Lane:
    def __init__(self, position: int, model: ModelHandleLike) -> None:
        self.position = position
        self.model = model
        self.concurrency = DEFAULT_CONCURRENCY
        self.failures = 0
        self.resume_at = 0.0

    def dropped(self) -> None:
        self.failures += 1
        delay = min(_COOLDOWN_FIRST * 2 ** (self.failures - 1), _COOLDOWN_MAX)
        self.resume_at = time.monotonic() + delay


class _Item:
    __slots__ = ("attempts", "avoid", "index", "input", "retried")

    def __init__(self, index: int, value: Any) -> None:
        self.index = index
        self.input = value
        self.attempts = 0
        self.retried: list[str] = []
        self.avoid: set[int] = set()


class BatchRun:
    """A running batch (from :func:`run_batch`): iterate it for :class:`BatchOutcome` objects
    in completion order; :attr:`progress` has live counters.

    Outcomes are handed over as they finish, a few at a time: a consumer that stops iterating
    slows the batch down rather than piling results up in memory. Results that go to an
    ``output`` file are written before they are handed over.
    """

    def __init__(
        self,
        lanes: list[_Lane],
        inputs: Iterable[Any] | AsyncIterable[Any],
        *,
        task: BatchTask,
        config: Any,
        response_format: Any,
        preset: str | None,
        timeout: float | None,
        max_retries: int,
        output: JsonlOutput | None,
        retry_failed: bool = False,
    ) -> None:
        self._lanes = lanes
        self._task = task
        self._config = config
        self._response_format = response_format
        self._preset = preset
        self._timeout = timeout
        self._max_retries = max_retries
        self.output = output
        """The JSON Lines file results go to, if any."""
        total = len(inputs) if isinstance(inputs, Sized) else None
        self.progress = BatchProgress(total=total)
        """Live counters: done, failed, in flight, retries, rate."""
        self._sync_inputs: Iterator[Any] | None = None
        self._async_inputs: AsyncIterator[Any] | None = None
        if isinstance(inputs, AsyncIterable):
            self._async_inputs = aiter(inputs)
        else:
            self._sync_inputs = iter(inputs)
        self._retry_failed = retry_failed
        self._next_index = 0
        self._exhausted = False
        self._input_error: BaseException | None = None
        self._ready: deque[_Item] = deque()
        self._retry: list[_Item] = []
        self._workers: anyio.CancelScope | None = None
        self._changed = anyio.Event()
        send, receive = anyio.create_memory_object_stream[BatchOutcome](
            max(sum(lane.concurrency for lane in lanes), 1)
        )
        self._send: MemoryObjectSendStream[BatchOutcome] = send
        self._receive: MemoryObjectReceiveStream[BatchOutcome] = receive

    def __repr__(self) -> str:
        return f"<BatchRun {self._task} on {len(self._lanes)} handle(s): {self.progress}>"

    # -- consuming ------------------------------------------------------------------------------

    def __aiter__(self) -> BatchRun:
        return self

    async def __anext__(self) -> BatchOutcome:
        try:
            return await self._receive.receive()
        except anyio.ClosedResourceError:
            raise LMStudioUsageError(
                "This batch run is over: iterate it inside its `async with run_batch(...)` block."
            ) from None
        except anyio.EndOfStream:
            if self._input_error is not None:
                # Raised as it was (an OSError writing the output stays an OSError), never
                # inside an exception group.
                error, self._input_error = self._input_error, None
                raise error from None
            raise StopAsyncIteration from None

    async def wait(self) -> BatchProgress:
        """Run the batch to the end, discarding outcomes (use with ``output=``); the final
        :attr:`progress`. Raises what iterating would raise (an input that failed to read, an
        ``OSError`` writing the output)."""
        async for _ in self:
            pass
        return self.progress

    # -- scheduling -----------------------------------------------------------------------------

    async def _drive(self) -> None:
        try:
            async with self._send, anyio.create_task_group() as workers:
                self._workers = workers.cancel_scope
                if self._async_inputs is not None:
                    workers.start_soon(self._read)
                for lane in self._lanes:
                    for _ in range(lane.concurrency):
                        workers.start_soon(self._work, lane)
        finally:
            # Every worker is gone (finished or cancelled): nothing is in flight any more, and
            # items cancelled by a break or an outer deadline must not show as running.
            self.progress.in_flight = 0
            self.progress.finished = time.monotonic()

    async def _work(self, lane: _Lane) -> None:
        while True:
            await self._cool_down(lane)
            item = await self._next_item(lane)
            if item is None:
                return
            outcome = await self._attempt(lane, item)
            if outcome is not None:
                await self._finish(outcome)

    async def _cool_down(self, lane: _Lane) -> None:
        """Wait out the lane's pause after a drop, but not past the end of the run."""
        while (delay := lane.resume_at - time.monotonic()) > 0 and not self._all_done():
            with anyio.move_on_after(delay):
                await self._changed.wait()

    def _all_done(self) -> bool:
        return (
            self._exhausted and not self._retry and not self._ready and self.progress.in_flight == 0
        )

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _next_item(self, lane: _Lane) -> _Item | None:
        while True:
            # Retries first, and never behind the input: only the reader waits for that.
            for position, item in enumerate(self._retry):
                if lane.position not in item.avoid or len(item.avoid) >= len(self._lanes):
                    del self._retry[position]
                    self.progress.in_flight += 1
                    return item
            if self._ready:
                item = self._ready.popleft()
                self.progress.in_flight += 1
                self._wake()  # the reader may fetch the next one
                return item
            if self._sync_inputs is not None and not self._exhausted:
                # A plain iterable never blocks the loop in next(): the worker reads it
                # itself, without a hand-over through the reader.
                pulled = await self._pull_sync()
                if pulled is not None:
                    self.progress.in_flight += 1
                    return pulled
                continue
            if self._all_done():
                return None
            await self._changed.wait()

    async def _pull_sync(self) -> _Item | None:
        assert self._sync_inputs is not None
        while not self._exhausted:
            try:
                value = next(self._sync_inputs)
            except StopIteration:
                self._stop_reading(None)
                return None
            except Exception as exc:
                # The input itself broke: finish what is running, then raise it.
                self._stop_reading(exc)
                return None
            item = await self._admit(value)
            if item is not None:
                return item
        return None

    async def _read(self) -> None:
        """For an async iterable: keep one item ready for the workers (so that only this
        task waits on a slow input); stop at its end."""
        assert self._async_inputs is not None
        try:
            while not self._exhausted:
                while self._ready:
                    await self._changed.wait()
                try:
                    value = await self._async_inputs.__anext__()
                except StopAsyncIteration:
                    self._stop_reading(None)
                    return
                except Exception as exc:
                    # The input itself broke: finish what is running, then raise it.
                    self._stop_reading(exc)
                    return
                item = await self._admit(value)
                if item is not None:
                    self._ready.append(item)
                    self._wake()
        finally:
            if not self._exhausted:
                self._stop_reading(None)

    async def _admit(self, value: Any) -> _Item | None:
        """The next input ``value`` as an item to run, or ``None`` when an earlier run's
        output already holds it (skipped) or holds a different input (reading stops)."""
        index = self._next_index
        self._next_index += 1
        if self.output is not None and index in self.output.written:
            if not self._same_input(index, value):
                return None
            if not (self._retry_failed and index in self.output.failed):
                # Done by an earlier run (with retry_failed, a failure runs again).
                self.progress.skipped += 1
                if index % 1024 == 0:
                    # A long resumed prefix: let the workers and the caller run.
                    await anyio.lowlevel.checkpoint()
                return None
        return _Item(index, value)

    def _stop_reading(self, error: BaseException | None) -> None:
        self._exhausted = True
        self._input_error = error
        self._wake()

    def _same_input(self, index: int, value: Any) -> bool:
        """True if item ``index`` is the one the output file recorded; else stop reading with
        a usage error and return False."""
        assert self.output is not None
        recorded = self.output.written[index]
        if recorded is not None and recorded != encodable(to_jsonable(value))[0]:
            self._stop_reading(
                LMStudioUsageError(
                    f"Item {index} of the input differs from the one recorded in "
                    f"{self.output.path}; a resumed run must read the same input in the same "
                    "order. Resume with the original input, or write to a new file."
                )
            )
            return False
        return True

    async def _attempt(self, lane: _Lane, item: _Item) -> BatchOutcome | None:
        item.attempts += 1
        try:
            result = await self._call(lane.model, item.input)
        except LMStudioConnectionError as exc:
            lane.dropped()
            # A refused token or a client its owner closed will not get better elsewhere.
            final = (LMStudioAuthenticationError, LMStudioClientClosedError)
            if isinstance(exc, final) or item.attempts > self._max_retries:
                return self._outcome(lane, item, error=exc)
            item.retried.append(f"handle {lane.position}: {_one_line(exc)}")
            item.avoid.add(lane.position)
            self._retry.append(item)
            self.progress.in_flight -= 1
            self.progress.retries += 1
            self._wake()
            return None
        except Exception as exc:
            # Whatever went wrong is this item's own failure; it must never stop the batch.
            return self._outcome(lane, item, error=exc)
        lane.failures = 0
        return self._outcome(lane, item, result=result)

    def _outcome(
        self, lane: _Lane, item: _Item, *, result: Any = None, error: BaseException | None = None
    ) -> BatchOutcome:
        return BatchOutcome(
            index=item.index,
            input=item.input,
            result=result,
            error=error,
            handle=lane.position,
            attempts=item.attempts,
            retried=tuple(item.retried),
        )

    async def _finish(self, outcome: BatchOutcome) -> None:
        if self.output is not None:
            try:
                # A blocking write of one short line: cheaper than a thread hop per item, and
                # written before the outcome is handed over, so a finished item is never lost.
                self.output.write(outcome.to_record())
            except OSError as exc:
                # The file cannot take results (disk full, I/O error): no later item could be
                # kept either, so stop the run and raise this error, as it is, at the end.
                self._input_error = exc
                self._exhausted = True
                assert self._workers is not None
                self._workers.cancel()
                await anyio.lowlevel.checkpoint()
                return
        progress = self.progress
        progress.in_flight -= 1
        progress.done += 1
        progress.failed += outcome.error is not None
        if progress.in_flight == 0:
            self._wake()
        await self._send.send(outcome)

    async def _call(self, model: ModelHandleLike, value: Any) -> Any:
        config = self._config
        if isinstance(value, BatchRequest):
            config = _merge_config(config, value.config)
            value = value.input
        if self._task == "embed":
            if not isinstance(value, str):
                raise LMStudioUsageError(
                    f"embed takes a string per item, got {type(value).__name__}."
                )
            assert isinstance(model, EmbeddingModel)
            return await model.embed(value, timeout=self._timeout)
        assert isinstance(model, LLM)
        options: dict[str, Any] = {
            "response_format": self._response_format,
            "config": config,
            "preset": self._preset,
            "timeout": self._timeout,
        }
        if self._task == "complete":
            if not isinstance(value, str):
                raise LMStudioUsageError(
                    f"complete takes a prompt string per item, got {type(value).__name__}; "
                    "use task='respond' for chats."
                )
            return await model.complete(value, **options)
        return await model.respond(value, **options)


def _merge_config(run_config: Any, item_config: Any) -> Any:
    if item_config is None:
        return run_config
    if isinstance(run_config, Mapping) and isinstance(item_config, Mapping):
        return {**run_config, **item_config}
    return item_config


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _check_models(
    models: ModelHandleLike | Sequence[ModelHandleLike], task: BatchTask | None
) -> tuple[list[_Lane], BatchTask]:
    if isinstance(models, LLM | EmbeddingModel):
        handles: list[object] = [models]
    elif isinstance(models, Sequence) and not isinstance(models, str):
        handles = list(models)
    else:
        handles = [models]  # reported below as the wrong kind of handle
    if not handles:
        raise LMStudioUsageError("run_batch() needs at least one model handle.")
    for handle in handles:
        if not isinstance(handle, LLM | EmbeddingModel):
            raise LMStudioUsageError(
                "run_batch() takes handles from `await client.llm.model(...)` or "
                f"`await client.embedding.model(...)`, got {type(handle).__name__}."
            )
    if task is None:
        task = "embed" if isinstance(handles[0], EmbeddingModel) else "respond"
    if task not in ("respond", "complete", "embed"):
        raise LMStudioUsageError(f"task must be 'respond', 'complete' or 'embed', got {task!r}.")
    wanted = EmbeddingModel if task == "embed" else LLM
    for position, handle in enumerate(handles):
        if not isinstance(handle, wanted):
            raise LMStudioUsageError(
                f"task={task!r} needs {wanted.__name__} handles; handle {position} is a "
                f"{type(handle).__name__}."
            )
    lanes = [_Lane(position, handle) for position, handle in enumerate(handles)]  # type: ignore[arg-type]
    return lanes, task


def _check_positive_int(value: object, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise LMStudioUsageError(f"{name} must be an int >= {minimum}, got {value!r}.")
    return value


async def _model_concurrency(lane: _Lane) -> None:
    if not isinstance(lane.model, LLM):
        return
    try:
        load_config = await lane.model.get_load_config()
    except LMStudioError:
        # Only a hint: a host that cannot answer now gets the default and fails over later.
        return
    parallel = load_config.max_parallel_predictions
    if isinstance(parallel, int) and parallel >= 1:
        lane.concurrency = parallel


@contextlib.asynccontextmanager
async def run_batch(
    models: ModelHandleLike | Sequence[ModelHandleLike],
    inputs: Iterable[Any] | AsyncIterable[Any],
    *,
    task: BatchTask | None = None,
    concurrency: int | None = None,
    max_retries: int = 2,
    config: Any = None,
    response_format: Any = None,
    preset: str | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 (per attempt, as in respond())
    output: str | os.PathLike[str] | JsonlOutput | None = None,
    resume: bool = False,
    retry_failed: bool = False,
) -> AsyncIterator[BatchRun]:
    """Run every item of ``inputs`` on ``models`` with bounded concurrency; yield a
    :class:`BatchRun` that gives each item's :class:`BatchOutcome` as it completes::

        async with run_batch([model_a, model_b], prompts, output="out.jsonl") as run:
            async for outcome in run:
                print(outcome.index, outcome.result.content if outcome.ok else outcome.error)

    ``models``: one handle or several (``LLM`` for ``task="respond"`` (default) or
    ``"complete"``, ``EmbeddingModel`` for ``"embed"``, the default for embedding handles),
    typically the same model on several LM Studio hosts. ``inputs``: any iterable or async
    iterable, read lazily; items are prompt strings, chat histories (``respond``) or
    :class:`BatchRequest` objects carrying their own ``config``.

    ``concurrency``: predictions in flight per handle; by default the model's
    ``max_parallel_predictions`` where LM Studio reports it, else :data:`DEFAULT_CONCURRENCY`.
    ``config``, ``response_format`` (structured output: ``result.parsed``), ``preset`` and
    ``timeout`` (seconds per attempt) are passed to every ``respond``/``complete`` call
    (``timeout`` also to ``embed``).

    An item that fails (a server error, a timeout, invalid input) becomes an outcome with
    ``error``; the batch goes on. An attempt whose connection drops is retried on another handle
    (or, with one handle, on the same one after it reconnects) up to ``max_retries`` times; each
    retry is listed in ``outcome.retried``, and an item out of retries fails with the
    :class:`LMStudioConnectionError`.

    ``output``: a path (or a :class:`JsonlOutput`; one passed unopened is opened and closed
    by ``run_batch``, one already open stays the caller's) to write one JSON line per finished
    item (:meth:`BatchOutcome.to_record`), flushed as it lands; the file is locked for the run, so
    a second run on it raises :class:`LMStudioUsageError` (see :class:`JsonlOutput`). With
    ``resume=True`` (also honoured for a :class:`JsonlOutput` that was not opened yet) items
    already in the file are skipped, and a torn last line from a killed run is dropped first;
    without it a file that already holds results raises :class:`LMStudioUsageError`. With
    ``retry_failed=True`` as well, items whose last line is an ``error`` run again and their
    new line supersedes the old one (a success is never written twice). An ``OSError`` writing
    the file (disk full) stops the run: it is raised as it is, unwrapped, by the iteration (or
    :meth:`BatchRun.wait`); items not yet written are picked up by a resumed run.

    Leaving the ``async with`` block before the end (``break``, an exception, cancellation)
    cancels every running prediction in LM Studio; items not yet finished are not written, so a
    resumed run picks them up. Invalid arguments raise :class:`LMStudioUsageError` on entry; an
    exception raised by ``inputs`` itself is raised at the end of iteration, after the items
    already running have finished.
    """
    lanes, checked_task = _check_models(models, task)
    _check_positive_int(max_retries, "max_retries", minimum=0)
    if concurrency is not None:
        _check_positive_int(concurrency, "concurrency", minimum=1)
    if response_format is not None and checked_task == "embed":
        raise LMStudioUsageError("response_format applies to respond and complete, not embed.")
    if not isinstance(inputs, Iterable | AsyncIterable) or isinstance(inputs, str | bytes):
        raise LMStudioUsageError(
            "inputs must be an iterable (or async iterable) of items, e.g. a list of prompts; "
            f"got {type(inputs).__name__}."
        )
    if retry_failed and not resume:
        raise LMStudioUsageError("retry_failed=True needs resume=True (and output=).")
    if isinstance(output, JsonlOutput):
        sink: JsonlOutput | None = output
        if resume and not output.resume:
            if output.is_open:
                raise LMStudioUsageError(
                    "resume=True came too late: this JsonlOutput is already open without "
                    "resume. Pass it unopened, or create it with JsonlOutput(path, resume=True)."
                )
            output.resume = True
    elif output is not None:
        sink = JsonlOutput(output, resume=resume)
    else:
        if resume:
            raise LMStudioUsageError("resume=True needs output= (the file to resume).")
        sink = None
    if concurrency is None:
        async with anyio.create_task_group() as queries:
            for lane in lanes:
                queries.start_soon(_model_concurrency, lane)
    else:
        for lane in lanes:
            lane.concurrency = concurrency
    # run_batch closes (and unlocks) the file if it opened it; one opened by the caller stays
    # theirs to close.
    opened_here = sink is not None and not sink.is_open
    if sink is not None:
        # Resuming reads the whole file back: in a thread, so the loop's other work goes on.
        await anyio.to_thread.run_sync(sink.open)
    try:
        run = BatchRun(
            lanes,
            inputs,
            task=checked_task,
            config=config,
            response_format=response_format,
            preset=preset,
            timeout=timeout,
            max_retries=max_retries,
            output=sink,
            retry_failed=retry_failed,
        )
        body_error: BaseException | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(run._drive)
            try:
                yield run
            except BaseException as exc:
                # Kept out of the task group, which would wrap it in an exception group: the
                # caller sees their own exception unchanged.
                body_error = exc
            finally:
                group.cancel_scope.cancel()
                run._receive.close()
        if body_error is not None:
            raise body_error
    finally:
        if sink is not None and opened_here:
            sink.close()

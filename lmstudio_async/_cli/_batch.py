"""``lmstudio-async batch``: a file of prompts through one or more LM Studio hosts, resumable."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO

import anyio
import msgspec

from .._client import LMStudioClient
from .._errors import LMStudioConnectionError, LMStudioUsageError
from .._namespaces import LLM, EmbeddingModel
from ..batch import BatchProgress, BatchRequest, run_batch
from ._connect import add_connection_arguments, timeouts_from
from ._interrupts import Interrupts
from ._messages import CommandError, describe_error
from ._numbers import non_negative_int, positive_int

__all__ = ["add_batch_command", "read_inputs"]

_JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
_TTY_REDRAW_SECONDS = 0.1
_BAR_WIDTH = 30
_MIN_PROGRESS_INTERVAL = 0.1


def add_batch_command(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "batch",
        help="run a file of prompts, resumably, over one or more LM Studio hosts",
        description="Run every prompt of INPUT and write one JSON line per finished item to "
        "OUT (in completion order; 'index' counts from 0 over INPUT's lines that are not "
        "blank, which are skipped). INPUT is a text file with one prompt per line, "
        'or a .jsonl file whose lines are objects with "prompt" (a string) or "messages" (a '
        'chat), and optionally "config" (prediction options). A killed or interrupted run '
        "continues with --resume: items already in OUT are skipped (with --retry-failed, items "
        "whose last line is an error run again). Only one run at a time may write OUT. "
        "Progress goes to stderr. Exit status: 0 when every item's last line in OUT is a "
        "result, 1 when some are errors (or the run failed), 2 for wrong usage, 130 when "
        "interrupted.",
    )
    parser.add_argument("input", metavar="INPUT", type=Path, help="prompts file (text or .jsonl)")
    parser.add_argument(
        "--output", "-o", metavar="OUT", type=Path, required=True, help="JSON Lines results file"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue OUT: skip the items it already holds"
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="with --resume: run again the items whose last line in OUT is an error (the new "
        "line supersedes it)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        metavar="N",
        help="predictions in flight per host (default: the model's parallel predictions "
        "setting where LM Studio reports it, else 4)",
    )
    parser.add_argument(
        "--model", help="model key or identifier (loaded if needed; default: any loaded model)"
    )
    parser.add_argument(
        "--task",
        choices=("respond", "complete", "embed"),
        default="respond",
        help="respond to each prompt as a chat (default), complete it as raw text, or embed it",
    )
    parser.add_argument("--max-tokens", type=positive_int, metavar="N", help="per prediction")
    parser.add_argument(
        "--max-retries",
        type=non_negative_int,
        default=2,
        metavar="N",
        help="times an item whose host dropped is retried on another host (default 2)",
    )
    parser.add_argument(
        "--progress-interval",
        type=_progress_interval,
        default=10.0,
        metavar="SECONDS",
        help="seconds between progress lines when stderr is not a terminal (default 10, "
        f"at least {_MIN_PROGRESS_INTERVAL:g})",
    )
    add_connection_arguments(parser, many_hosts=True)
    parser.set_defaults(run=run_batch_command)


def _progress_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    # Below a tenth of a second a log would get a line per item, which is what the final
    # summary is for; NaN and infinity fail this test too.
    if not _MIN_PROGRESS_INTERVAL <= value < float("inf"):
        raise argparse.ArgumentTypeError(
            f"expected seconds of at least {_MIN_PROGRESS_INTERVAL:g}, got {text!r}"
        )
    return value


def read_inputs(path: Path, task: str) -> list[Any]:
    """The items of an INPUT file; :class:`LMStudioUsageError` naming the first bad line.

    Text: one prompt per non-blank line. JSON Lines (``.jsonl``/``.ndjson``): one object per
    non-blank line with ``prompt`` or ``messages`` (``respond`` only), and optional ``config``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LMStudioUsageError(f"cannot read INPUT {path}: {exc}") from exc
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if path.suffix.lower() not in _JSONL_SUFFIXES:
        return [line.strip() for _, line in lines]
    return [_jsonl_item(path, number, line, task) for number, line in lines]


def _jsonl_item(path: Path, number: int, line: str, task: str) -> Any:
    where = f"{path} line {number}"
    try:
        value = msgspec.json.decode(line)
    except msgspec.DecodeError as exc:
        raise LMStudioUsageError(f"{where} is not JSON ({exc}).") from exc
    if not isinstance(value, dict):
        raise LMStudioUsageError(f'{where}: expected an object with "prompt" or "messages".')
    unknown = set(value) - {"prompt", "messages", "config"}
    if unknown:
        raise LMStudioUsageError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
            'use "prompt" or "messages", and "config".'
        )
    if ("prompt" in value) == ("messages" in value):
        raise LMStudioUsageError(f'{where}: give exactly one of "prompt" and "messages".')
    if "prompt" in value and not isinstance(value["prompt"], str):
        raise LMStudioUsageError(f'{where}: "prompt" must be a string.')
    if "messages" in value and (task != "respond" or not isinstance(value["messages"], list)):
        raise LMStudioUsageError(f'{where}: "messages" must be a list, and needs --task respond.')
    config = value.get("config")
    if config is not None and not isinstance(config, dict):
        raise LMStudioUsageError(f'{where}: "config" must be an object of prediction options.')
    item = value["prompt"] if "prompt" in value else value["messages"]
    return item if config is None else BatchRequest(item, config=config)


async def run_batch_command(args: argparse.Namespace, interrupts: Interrupts) -> int:
    if args.retry_failed and not args.resume:
        raise CommandError(
            "--retry-failed goes with --resume (it reruns failures in OUT).", usage=True
        )
    items = read_inputs(args.input, args.task)
    config = {"max_tokens": args.max_tokens} if args.max_tokens is not None else None
    stream = sys.stderr
    progress: BatchProgress | None = None
    failed_in_output: set[int] = set()
    summarise = True
    try:
        async with (
            _models(args, stream) as models,
            run_batch(
                models,
                items,
                task=args.task,
                concurrency=args.concurrency,
                max_retries=args.max_retries,
                config=config if args.task != "embed" else None,
                output=args.output,
                resume=args.resume,
                retry_failed=args.retry_failed,
            ) as run,
        ):
            progress = run.progress
            failure: Exception | None = None
            async with anyio.create_task_group() as display:
                display.start_soon(_show_progress, progress, stream, args.progress_interval)
                try:
                    await run.wait()
                except (OSError, LMStudioUsageError) as exc:
                    # Kept out of the task group, which would wrap it in an exception group.
                    failure = exc
                display.cancel_scope.cancel()
            if isinstance(failure, OSError):
                summarise = False
                raise CommandError(
                    f"cannot write {args.output}: {failure.strerror or failure}. "
                    f"{progress.done} results were written before it; make room (or fix the "
                    "file), then run again with --resume to finish."
                )
            if failure is not None:
                raise failure
            assert run.output is not None
            failed_in_output = set(run.output.failed)
    except LMStudioUsageError:
        # The run was refused (e.g. the input differs from OUT's): the error says what to do.
        summarise = False
        raise
    finally:
        if progress is not None and summarise:
            _finish_line(progress, stream)
            summary = _summary(
                progress, args, failed_in_output, hosts=len(args.host or [None]),
                interrupted=interrupts.interrupted,
            )  # fmt: skip
            print(summary, file=stream)
    return 1 if failed_in_output else 0


@contextlib.asynccontextmanager
async def _models(args: argparse.Namespace, stream: TextIO) -> AsyncIterator[list[Any]]:
    """One handle per host that answers (``--host``, repeated), or one on an in-process
    simulator. A host that does not answer is reported on ``stream`` and left out; when none
    answers, the error names them (a single host's error is raised as it is)."""
    timeouts = timeouts_from(args)
    async with contextlib.AsyncExitStack() as stack:
        if args.simulate:
            from ..testing import Simulator  # only needed for --simulate

            sim = await stack.enter_async_context(Simulator())
            hosts: list[str | None] = [sim.base_url]
        else:
            hosts = list(args.host) if args.host else [None]
        models: list[LLM | EmbeddingModel] = []
        silent: list[str] = []
        reports: list[str] = []
        for host in hosts:
            host_stack = contextlib.AsyncExitStack()
            try:
                client = await host_stack.enter_async_context(
                    LMStudioClient(host, api_token=args.api_token, timeouts=timeouts)
                )
                namespace = client.embedding if args.task == "embed" else client.llm
                models.append(await namespace.model(args.model))
            except LMStudioConnectionError as exc:
                await host_stack.aclose()
                if len(hosts) == 1:
                    raise
                assert host is not None
                silent.append(host)
                # The shared wording, about this one host rather than the whole --host list.
                one = argparse.Namespace(**{**vars(args), "host": host})
                reports.append(describe_error(exc, one))
                continue
            except BaseException:
                await host_stack.aclose()
                raise
            stack.push_async_exit(host_stack)
        if not models:
            raise CommandError(
                f"no LM Studio answered on {', '.join(silent)}; nothing was run. Check the "
                "--host addresses and that LM Studio's server is on there."
            )
        for report in reports:
            print(f"{report} Going on with the other host(s).", file=stream)
        yield models


async def _show_progress(progress: BatchProgress, stream: TextIO, interval: float) -> None:
    tty = stream.isatty()
    while True:
        # A display refresh, not synchronisation: the run never waits for it.
        await anyio.sleep(_TTY_REDRAW_SECONDS if tty else interval)
        if tty:
            stream.write("\r" + render(progress) + "\x1b[K")
        else:
            stream.write(f"batch: {progress}\n")
        stream.flush()


def render(progress: BatchProgress) -> str:
    """``[##########..........] 512/1000  3 failed  8 in flight  24.1/s`` (no bar without a
    total)."""
    finished = progress.skipped + progress.done
    parts = []
    if progress.total:
        filled = _BAR_WIDTH * finished // progress.total
        parts.append(f"[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {finished}/{progress.total}")
    else:
        parts.append(f"{finished} done")
    if progress.failed:
        parts.append(f"{progress.failed} failed")
    parts.append(f"{progress.in_flight} in flight")
    parts.append(f"{progress.rate:.1f}/s")
    return "  ".join(parts)


def _finish_line(progress: BatchProgress, stream: TextIO) -> None:
    if stream.isatty():
        stream.write("\r" + render(progress) + "\x1b[K\n")
        stream.flush()


def _summary(
    progress: BatchProgress,
    args: argparse.Namespace,
    failed_in_output: set[int],
    *,
    hosts: int,
    interrupted: bool,
) -> str:
    done = f"batch: {progress.done} done"
    details = [f"{progress.failed} failed"] if progress.failed else []
    if progress.skipped:
        details.append(f"{progress.skipped} already in {args.output}")
    if progress.retries:
        again = "on another host" if hosts > 1 else "after a dropped connection"
        details.append(f"{progress.retries} retried {again}")
    if details:
        done += f" ({', '.join(details)})"
    done += f" in {progress.elapsed:.1f} s, results in {args.output}"
    unfinished = progress.total is not None and progress.skipped + progress.done < progress.total
    if interrupted or unfinished:
        return done + ". Stopped early: run again with --resume to finish."
    if failed_in_output:
        done += (
            f". {len(failed_in_output)} item(s) in {args.output} ended with an error; "
            "--resume --retry-failed runs them again"
        )
    return done

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
from .._errors import LMStudioUsageError
from .._namespaces import LLM, EmbeddingModel
from ..batch import BatchProgress, BatchRequest, run_batch
from ._interrupts import Interrupts

__all__ = ["add_batch_command", "read_inputs"]

_JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
_TTY_REDRAW_SECONDS = 0.1
_BAR_WIDTH = 30


def add_batch_command(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "batch",
        help="run a file of prompts, resumably, over one or more LM Studio hosts",
        description="Run every prompt of INPUT and write one JSON line per finished item to "
        "OUT (in completion order; 'index' is the item's position in INPUT). INPUT is a text "
        "file with one prompt per line, or a .jsonl file whose lines are objects with "
        '"prompt" (a string) or "messages" (a chat), and optionally "config" (prediction '
        "options). A killed or interrupted run continues with --resume: items already in OUT "
        "are skipped. Progress goes to stderr. Exit status: 0 when every item succeeded, 1 "
        "when some failed (their lines carry 'error'), 130 when interrupted.",
    )
    parser.add_argument("input", metavar="INPUT", type=Path, help="prompts file (text or .jsonl)")
    parser.add_argument(
        "--output", "-o", metavar="OUT", type=Path, required=True, help="JSON Lines results file"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue OUT: skip the items it already holds"
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
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
    parser.add_argument("--max-tokens", type=_positive_int, metavar="N", help="per prediction")
    parser.add_argument(
        "--max-retries",
        type=int,
        default=2,
        metavar="N",
        help="times an item whose host dropped is retried on another host (default 2)",
    )
    parser.add_argument(
        "--progress-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between progress lines when stderr is not a terminal (default 10)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--host",
        action="append",
        metavar="HOST:PORT",
        help="an LM Studio to use; repeat it to spread the batch over several hosts "
        "(default: $LMSTUDIO_BASE_URL, else the local LM Studio)",
    )
    where.add_argument(
        "--simulate",
        action="store_true",
        help="run against the bundled LM Studio simulator in-process (no LM Studio needed)",
    )
    parser.set_defaults(run=run_batch_command)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
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
    items = read_inputs(args.input, args.task)
    config = {"max_tokens": args.max_tokens} if args.max_tokens is not None else None
    stream = sys.stderr
    progress: BatchProgress | None = None
    try:
        async with (
            _models(args) as models,
            run_batch(
                models,
                items,
                task=args.task,
                concurrency=args.concurrency,
                max_retries=args.max_retries,
                config=config if args.task != "embed" else None,
                output=args.output,
                resume=args.resume,
            ) as run,
        ):
            progress = run.progress
            async with anyio.create_task_group() as display:
                display.start_soon(_show_progress, progress, stream, args.progress_interval)
                await run.wait()
                display.cancel_scope.cancel()
    finally:
        if progress is not None:
            _finish_line(progress, stream)
            print(_summary(progress, args, interrupted=interrupts.interrupted), file=stream)
    return 1 if progress is not None and progress.failed else 0


@contextlib.asynccontextmanager
async def _models(args: argparse.Namespace) -> AsyncIterator[list[Any]]:
    """One handle per host (``--host``, repeated), or one on an in-process simulator."""
    async with contextlib.AsyncExitStack() as stack:
        if args.simulate:
            from ..testing import Simulator  # only needed for --simulate

            sim = await stack.enter_async_context(Simulator())
            hosts: list[str | None] = [sim.base_url]
        else:
            hosts = list(args.host) if args.host else [None]
        models: list[LLM | EmbeddingModel] = []
        for host in hosts:
            client = await stack.enter_async_context(LMStudioClient(host))
            namespace = client.embedding if args.task == "embed" else client.llm
            models.append(await namespace.model(args.model))
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


def _summary(progress: BatchProgress, args: argparse.Namespace, *, interrupted: bool) -> str:
    done = f"batch: {progress.done} done"
    details = [f"{progress.failed} failed"] if progress.failed else []
    if progress.skipped:
        details.append(f"{progress.skipped} already in {args.output}")
    if progress.retries:
        details.append(f"{progress.retries} retried on another host")
    if details:
        done += f" ({', '.join(details)})"
    done += f" in {progress.elapsed:.1f} s, results in {args.output}"
    unfinished = progress.total is not None and progress.skipped + progress.done < progress.total
    if interrupted or unfinished:
        done += ". Stopped early: run again with --resume to finish."
    return done

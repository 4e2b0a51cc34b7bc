"""Run many prompts with the batch runner: bounded concurrency, progress, resumable JSON Lines.

    uv run python examples/batch.py --simulate --count 1000 --concurrency 8 --output results.jsonl
    uv run python examples/batch.py --simulate --prompts prompts.txt     # one prompt per line
    uv run python examples/batch.py --simulate --output results.jsonl --resume   # after a crash

``lmstudio_async.batch.run_batch`` keeps at most ``--concurrency`` predictions in flight, hands
each outcome over as it completes, and writes one JSON line per finished prompt (completion
order; ``index`` is the prompt's position). A failed prompt becomes a line with ``"error"``
instead of stopping the batch. With ``--resume`` a killed run carries on where it stopped: the
prompts already in the file are skipped. Several LM Studio hosts: pass one model handle per host
to ``run_batch`` (or use ``lmstudio-async batch --host A --host B``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from _common import connect, parser

from lmstudio_async.batch import BatchProgress, run_batch


def load_prompts(path: str | None, count: int) -> list[str]:
    if path is None:
        return [f"Give me fact number {n} about the moon." for n in range(1, count + 1)]
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def draw(progress: BatchProgress) -> None:
    """``[##########..........]  512/1000  24.1/s`` on stderr, redrawn in place."""
    total = progress.total or 1
    finished = progress.skipped + progress.done
    filled = 30 * finished // total
    failed = f"  {progress.failed} failed" if progress.failed else ""
    sys.stderr.write(
        f"\r[{'#' * filled}{'.' * (30 - filled)}] {finished:>{len(str(total))}}/{total}"
        f"  {progress.rate:.1f}/s{failed}"
    )
    if finished == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


async def main(args: Any) -> int:
    prompts = load_prompts(args.prompts, args.count)
    if not prompts:
        print("batch.py: no prompts to run", file=sys.stderr)
        return 2
    to_stdout = args.output == "-"
    async with connect(args.simulate) as client:
        model = await client.llm.model(args.model)
        async with run_batch(
            model,
            prompts,
            concurrency=args.concurrency,
            config={"max_tokens": args.max_tokens},
            output=None if to_stdout else args.output,
            resume=args.resume,
        ) as run:
            last_draw = 0.0
            draw(run.progress)
            async for outcome in run:
                if to_stdout:
                    print(json.dumps(outcome.to_record()), flush=True)
                # The bar is redrawn at most ten times a second: drawing is not free.
                if time.monotonic() - last_draw >= 0.1 or run.progress.in_flight == 0:
                    last_draw = time.monotonic()
                    draw(run.progress)
    progress = run.progress
    skipped = f", {progress.skipped} already done" if progress.skipped else ""
    print(f"{progress.succeeded} ok, {progress.failed} failed{skipped}", file=sys.stderr)
    return 1 if progress.failed else 0


if __name__ == "__main__":
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--prompts", metavar="FILE", help="one prompt per line")
    arguments.add_argument("--count", type=int, default=100, help="generated prompts if no FILE")
    arguments.add_argument("--concurrency", type=int, default=4, help="predictions in flight")
    arguments.add_argument("--max-tokens", type=int, default=200, help="per prediction")
    arguments.add_argument("--model", default="qwen2.5-7b-instruct", help="model key")
    arguments.add_argument("--output", default="-", help="JSON Lines file ('-': stdout)")
    arguments.add_argument("--resume", action="store_true", help="continue --output's run")
    args = arguments.parse_args()
    if args.concurrency < 1:
        arguments.error("--concurrency must be at least 1")
    if args.resume and args.output == "-":
        arguments.error("--resume needs --output FILE")
    sys.exit(anyio.run(main, args))

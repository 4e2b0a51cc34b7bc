"""Run many prompts with bounded concurrency, a progress bar, and JSON Lines output.

    uv run python examples/batch.py --simulate --count 1000 --concurrency 8 --output results.jsonl
    uv run python examples/batch.py --simulate --prompts prompts.txt     # one prompt per line

At most ``--concurrency`` predictions run at once (an ``anyio.CapacityLimiter``), so a big batch
queues on this side instead of flooding LM Studio. Each result is one JSON line (written as
results arrive, so lines are in completion order; ``index`` is the prompt's position). A failed
prompt becomes a line with ``"error"`` instead of stopping the batch.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import anyio
from _common import connect, parser

import lmstudio_async as lms


class Progress:
    """``[##########..........]  512/1000  24.1/s`` on stderr, redrawn in place."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self._stream = stream
        self._started = time.monotonic()
        self._last_draw = 0.0

    def advance(self, *, failed: bool) -> None:
        self.done += 1
        self.failed += failed
        now = time.monotonic()
        if self.done == self.total or now - self._last_draw >= 0.1:
            self._last_draw = now
            self.draw()

    def draw(self) -> None:
        width = 30
        filled = width * self.done // max(self.total, 1)
        rate = self.done / max(time.monotonic() - self._started, 1e-9)
        failed = f"  {self.failed} failed" if self.failed else ""
        self._stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done:>{len(str(self.total))}}"
            f"/{self.total}  {rate:.1f}/s{failed}"
        )
        if self.done == self.total:
            self._stream.write("\n")
        self._stream.flush()


def load_prompts(path: str | None, count: int) -> list[str]:
    if path is None:
        return [f"Give me fact number {n} about the moon." for n in range(1, count + 1)]
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


async def run_batch(
    client: lms.LMStudioClient,
    model_key: str,
    prompts: list[str],
    concurrency: int,
    max_tokens: int,
    out: TextIO,
) -> Progress:
    model = await client.llm.model(model_key)
    limiter = anyio.CapacityLimiter(concurrency)
    progress = Progress(len(prompts))
    progress.draw()

    async def one(index: int, prompt: str) -> None:
        record: dict[str, Any] = {"index": index, "prompt": prompt}
        async with limiter:
            try:
                result = await model.respond(prompt, config={"max_tokens": max_tokens})
            except lms.LMStudioServerError as exc:
                record["error"] = str(exc)
            else:
                record["content"] = result.content
                record["stop_reason"] = result.stats.stop_reason
                record["predicted_tokens"] = result.stats.predicted_tokens_count
        out.write(json.dumps(record) + "\n")
        progress.advance(failed="error" in record)

    # One task per prompt is cheap; the limiter, not the task count, bounds the load on LM Studio.
    async with anyio.create_task_group() as tg:
        for index, prompt in enumerate(prompts):
            tg.start_soon(one, index, prompt)
    return progress


async def main(args: Any, out: TextIO) -> int:
    prompts = load_prompts(args.prompts, args.count)
    if not prompts:
        print("batch.py: no prompts to run", file=sys.stderr)
        return 2
    async with connect(args.simulate) as client:
        progress = await run_batch(
            client, args.model, prompts, args.concurrency, args.max_tokens, out
        )
    print(f"{progress.done - progress.failed} ok, {progress.failed} failed", file=sys.stderr)
    return 1 if progress.failed else 0


if __name__ == "__main__":
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--prompts", metavar="FILE", help="one prompt per line")
    arguments.add_argument("--count", type=int, default=100, help="generated prompts if no FILE")
    arguments.add_argument("--concurrency", type=int, default=4, help="predictions in flight")
    arguments.add_argument("--max-tokens", type=int, default=200, help="per prediction")
    arguments.add_argument("--model", default="qwen2.5-7b-instruct", help="model key")
    arguments.add_argument("--output", default="-", help="JSON Lines file ('-': stdout)")
    args = arguments.parse_args()
    if args.concurrency < 1:
        arguments.error("--concurrency must be at least 1")
    if args.output == "-":
        sys.exit(anyio.run(main, args, sys.stdout))
    with open(args.output, "w", encoding="utf-8") as output:
        sys.exit(anyio.run(main, args, output))

"""Batch inference on Ray Data: a JSONL of prompts through several LM Studio hosts, one actor each.

    uv sync --group ray          # Ray is an optional dependency group, never needed by the SDK
    uv run python examples/ray_batch.py prompts.jsonl out/ --host gpu-1:1234 --host gpu-2:1234

``prompts.jsonl`` has one ``{"prompt": "..."}`` object per line. Ray Data reads it and cuts it
into one contiguous shard per ``--host`` (sizes differ by at most one row); one actor per host
holds one ``LMStudioClient`` and runs its shard, ``--batch-size`` rows at a time, with
``lmstudio_async.batch.run_batch`` (so each host gets ``--concurrency`` predictions at a time).
The shards are assigned explicitly rather than left to an actor pool, so every host is
guaranteed its share; the price is that a slow host finishes last instead of handing rows to a
faster one. The results (``prompt``, ``content``, ``error``, ``host``) come back to the driver
and are written as JSON Lines files into ``out/``.

Use this when the batch already lives in a Ray pipeline (data in object storage, preprocessing
on a cluster). For a file of prompts on one machine, the in-process runner
(``lmstudio-async batch``) is simpler, balances load between hosts and resumes a killed run.
``--address`` joins a running Ray cluster instead of starting a local one. Started with
``uv run``, Ray launches its workers through ``uv run`` too (packaging the working directory);
``RAY_ENABLE_UV_RUN_RUNTIME_ENV=0`` makes them use the current environment as it is.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio
import ray
from anyio.abc import TaskStatus
from anyio.from_thread import BlockingPortal, start_blocking_portal

import lmstudio_async as lms
from lmstudio_async.batch import run_batch


class LMStudioPredictor:
    """A Ray actor: one ``LMStudioClient`` for one host, serving the shard of rows given to it.

    The client lives in an event loop on a thread of its own (an anyio blocking portal): Ray
    calls the actor's methods synchronously, and a client stays in the loop that opened it.
    """

    def __init__(self, host: str, model_key: str | None, concurrency: int) -> None:
        self.host = host
        self._model_key = model_key
        self._concurrency = concurrency
        self._portal_cm = start_blocking_portal()
        self._portal: BlockingPortal = self._portal_cm.__enter__()
        self._portal.start_task(self._hold_client)

    async def _hold_client(self, *, task_status: TaskStatus[None]) -> None:
        # One task opens, holds and (when the actor's loop ends) closes the client.
        async with lms.LMStudioClient(self.host) as client:
            self._model = await client.llm.model(self._model_key)
            task_status.started()
            await anyio.sleep_forever()

    def run_shard(self, shard: ray.data.Dataset, batch_size: int) -> list[dict[str, Any]]:
        """Every row of ``shard`` through this actor's host, ``batch_size`` rows at a time."""
        rows: list[dict[str, Any]] = []
        for batch in shard.iter_batches(batch_size=batch_size, batch_format="numpy"):
            prompts = [str(prompt) for prompt in batch["prompt"]]
            rows.extend(self._portal.call(self._run, prompts))
        return rows

    async def _run(self, prompts: list[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [{} for _ in prompts]
        async with run_batch(self._model, prompts, concurrency=self._concurrency) as run:
            async for outcome in run:
                record = outcome.to_record()
                rows[outcome.index] = {
                    "prompt": prompts[outcome.index],
                    "content": record.get("content"),
                    "error": record.get("error"),
                    "host": self.host,
                }
        return rows


def shard_bounds(count: int, hosts: int) -> list[int]:
    """Where to cut ``count`` rows into ``hosts`` contiguous shards whose sizes differ by at
    most one: every host gets work, whatever Ray's scheduler would have preferred."""
    return [count * part // hosts for part in range(1, hosts)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help='JSONL file, one {"prompt": ...} per line')
    parser.add_argument("output", help="directory for the JSON Lines results")
    parser.add_argument("--host", action="append", required=True, help="LM Studio HOST:PORT")
    parser.add_argument("--model", help="model key (default: any loaded LLM)")
    parser.add_argument("--concurrency", type=int, default=4, help="predictions per host")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per run_batch call")
    parser.add_argument("--address", help="a running Ray cluster (default: start a local one)")
    args = parser.parse_args(argv)

    ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        prompts = ray.data.read_json(args.input).materialize()
        # One shard per host, cut by row count: an explicit assignment, so every host serves
        # its share (an actor pool would let whichever actor starts first take everything).
        shards = prompts.split_at_indices(shard_bounds(prompts.count(), len(args.host)))
        # The actors wait on sockets while LM Studio computes: a fraction of a CPU each.
        predictor = ray.remote(num_cpus=0.25)(LMStudioPredictor)
        actors: list[Any] = [
            predictor.remote(host, args.model, args.concurrency) for host in args.host
        ]
        parts = ray.get(
            [
                actor.run_shard.remote(shard, args.batch_size)
                for actor, shard in zip(actors, shards, strict=True)
            ]
        )
        rows = [row for part in parts for row in part]
        # The results come back to the driver (fine for a batch that fits in its memory);
        # a bigger one would have each actor write its own files instead.
        ray.data.from_items(rows).write_json(args.output)
        failed = sum(row["error"] is not None for row in rows)
    finally:
        ray.shutdown()
    print(f"results in {args.output}; {failed} failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

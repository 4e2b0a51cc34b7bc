"""Batch inference on Ray Data: a JSONL of prompts through several LM Studio hosts, one actor each.

    uv sync --group ray          # Ray is an optional dependency group, never needed by the SDK
    uv run python examples/ray_batch.py prompts.jsonl out/ --host gpu-1:1234 --host gpu-2:1234

``prompts.jsonl`` has one ``{"prompt": "..."}`` object per line. Ray Data reads it, cuts it into
batches and maps them through a pool of actors, one per ``--host``; each actor holds one
``LMStudioClient`` for its host and runs its batch with ``lmstudio_async.batch.run_batch`` (so
each host gets ``--concurrency`` predictions at a time). The results (``prompt``, ``content``,
``error``, ``host``) are written as JSON Lines files into ``out/``.

Use this when the batch already lives in a Ray pipeline or is too big for one process (data in
object storage, preprocessing on a cluster). For a file of prompts on one machine, the
in-process runner (``lmstudio-async batch``) is simpler, and it resumes a killed run.
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


class HostAssigner:
    """A Ray actor that hands each predictor actor the next host, round robin."""

    def __init__(self, hosts: list[str]) -> None:
        self._hosts = hosts
        self._given = 0

    def next(self) -> str:
        host = self._hosts[self._given % len(self._hosts)]
        self._given += 1
        return host


class LMStudioPredictor:
    """A Ray Data actor: one ``LMStudioClient`` for one host, used for every batch it gets.

    The client lives in an event loop on a thread of its own (an anyio blocking portal):
    Ray calls ``__call__`` synchronously, and a client stays in the loop that opened it.
    """

    def __init__(self, assigner: Any, model_key: str | None, concurrency: int) -> None:
        self.host: str = ray.get(assigner.next.remote())
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

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        prompts = [str(prompt) for prompt in batch["prompt"]]
        return self._portal.call(self._run, prompts)

    async def _run(self, prompts: list[str]) -> dict[str, list[Any]]:
        content: list[str | None] = [None] * len(prompts)
        error: list[str | None] = [None] * len(prompts)
        async with run_batch(self._model, prompts, concurrency=self._concurrency) as run:
            async for outcome in run:
                record = outcome.to_record()
                content[outcome.index] = record.get("content")
                error[outcome.index] = record.get("error")
        return {
            "prompt": prompts,
            "content": content,
            "error": error,
            "host": [self.host] * len(prompts),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help='JSONL file, one {"prompt": ...} per line')
    parser.add_argument("output", help="directory for the JSON Lines results")
    parser.add_argument("--host", action="append", required=True, help="LM Studio HOST:PORT")
    parser.add_argument("--model", help="model key (default: any loaded LLM)")
    parser.add_argument("--concurrency", type=int, default=4, help="predictions per host")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per Ray batch")
    parser.add_argument("--address", help="a running Ray cluster (default: start a local one)")
    args = parser.parse_args(argv)

    ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        # Start work only once every host's actor is up: an actor that is still starting
        # would otherwise find the batches already taken by the others and its host idle.
        context.wait_for_min_actors_s = 600
        assigner = ray.remote(HostAssigner).remote(args.host)
        results = ray.data.read_json(args.input).map_batches(
            LMStudioPredictor,
            fn_constructor_kwargs={
                "assigner": assigner,
                "model_key": args.model,
                "concurrency": args.concurrency,
            },
            batch_size=args.batch_size,
            # One actor (one client) per host, given one batch at a time so that batches go
            # to whichever host is free rather than queueing behind a busy one.
            compute=ray.data.ActorPoolStrategy(
                size=len(args.host), max_tasks_in_flight_per_actor=1
            ),
            # The actors wait on sockets while LM Studio computes: a fraction of a CPU each
            # keeps them from starving Ray Data's own read and write tasks.
            num_cpus=0.25,
        )
        # Ray Data is lazy: without materialize() the count below would run every prompt again.
        results = results.materialize()
        results.write_json(args.output)
        failed = sum(row["error"] is not None for row in results.iter_rows())
    finally:
        ray.shutdown()
    print(f"results in {args.output}; {failed} failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

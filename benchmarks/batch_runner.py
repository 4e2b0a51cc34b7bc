"""Batch runner benchmarks: overhead, scaling over hosts, kill and resume. Updates RESULTS.md.

    uv run python benchmarks/batch_runner.py            # full sizes, ~3 min on 2 cores
    uv run python benchmarks/batch_runner.py --quick    # tiny sizes (tests/batch runs it)

1. **Overhead**: ``run_batch`` against a hand-written ``CapacityLimiter`` + task group loop, the
   same client, on 10,000 prompts x 50 fragments from a firehose simulator (its own process).
   Goal: the runner within 5 % of the loop's items/s. The goal is judged on throughput (items
   per second of wall time): the two clients run in alternating order within each repetition
   of one process, and the verdict uses the median over repetitions of each pair's ratio, so
   a neighbour's load that drifts over the run hits both sides of a pair alike. Items per
   second of the client process's CPU time are reported and judged too, as the measure that
   neighbours disturb least (the firehose server runs in another process).
2. **Hosts**: the same paced batch on four simulator hosts against one (each its own process;
   every reply is 20 fragments at 100 tokens/s, and each host runs 4 predictions at a time, as
   a model loaded with ``max_parallel_predictions=4`` would). Goal: four hosts >= 3.5x one.
3. **Kill and resume**: ``lmstudio-async batch`` on 10,000 prompts, SIGKILLed once a third of
   the results are written, then rerun with ``--resume``. Goal: exactly 10,000 distinct
   results, none twice, every line valid JSON.

Each simulator runs in a process of its own (``benchmarks/batch_runner.py serve MODE``), so
the client side is what is measured. Medians over ``--reps`` repetitions, the two clients
alternating.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

import lmstudio_async as lms
from lmstudio_async.batch import run_batch
from lmstudio_async.testing import ScriptedReply, Simulator

ROOT = Path(__file__).resolve().parents[1]
MODEL = "qwen2.5-7b-instruct"
START, END = "<!-- batch-generated:start -->", "<!-- batch-generated:end -->"
PACED_WORDS = 20
PACED_RATE = 100.0
PER_HOST = 4


@dataclass(frozen=True)
class Sizes:
    overhead_prompts: int
    overhead_fragments: int
    overhead_concurrency: int
    hosts_prompts: int
    resume_prompts: int
    reps: int


FULL = Sizes(10_000, 50, 32, 400, 10_000, 3)
QUICK = Sizes(300, 5, 8, 16, 300, 1)


# -- simulator processes ------------------------------------------------------------------------


async def serve(mode: str, count: int) -> None:
    """Run one simulator until stdin closes; print its port first."""
    async with Simulator(firehose=mode == "firehose") as sim:
        if mode == "paced":
            words = " ".join(f"w{n}" for n in range(PACED_WORDS))
            reply = ScriptedReply(content=words, tokens_per_second=PACED_RATE)
            sim.script(MODEL, *[reply] * count)
        print(sim.port, flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)


@contextmanager
def simulators(mode: str, hosts: int, count: int = 0) -> Iterator[list[str]]:
    """``hosts`` simulator processes in ``mode``: their ``127.0.0.1:PORT`` addresses."""
    with ExitStack() as stack:
        command = [sys.executable, __file__, "serve", mode, str(count)]
        processes = [
            stack.enter_context(
                subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            )
            for _ in range(hosts)
        ]
        addresses = []
        for process in processes:
            assert process.stdout is not None
            addresses.append(f"127.0.0.1:{int(process.stdout.readline())}")
        try:
            yield addresses
        finally:
            for process in processes:
                assert process.stdin is not None
                process.stdin.close()


# -- 1. overhead --------------------------------------------------------------------------------


async def hand_written(model: lms.LLM, prompts: list[str], concurrency: int, tokens: int) -> int:
    """What users wrote before the runner: a limiter, one task per prompt, errors recorded."""
    limiter = anyio.CapacityLimiter(concurrency)
    done = 0

    async def one(prompt: str) -> None:
        nonlocal done
        async with limiter:
            with suppress(lms.LMStudioError):
                await model.respond(prompt, config={"max_tokens": tokens})
            done += 1

    async with anyio.create_task_group() as group:
        for prompt in prompts:
            group.start_soon(one, prompt)
    return done


async def with_runner(model: lms.LLM, prompts: list[str], concurrency: int, tokens: int) -> int:
    done = 0
    config = {"max_tokens": tokens}
    async with run_batch(model, prompts, concurrency=concurrency, config=config) as run:
        async for _ in run:
            done += 1
    return done


async def timed(
    address: str,
    body: Callable[[lms.LLM, list[str], int, int], Awaitable[int]],
    sizes: Sizes,
) -> tuple[float, float]:
    """Items per second of wall time, and per second of this process's CPU time."""
    prompts = [f"prompt {n}" for n in range(sizes.overhead_prompts)]
    async with lms.LMStudioClient(address) as client:
        model = await client.llm.model(MODEL)
        cpu = time.process_time()
        started = time.perf_counter()
        done = await body(model, prompts, sizes.overhead_concurrency, sizes.overhead_fragments)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    assert done == len(prompts), (done, len(prompts))
    return len(prompts) / elapsed, len(prompts) / cpu


def overhead(sizes: Sizes) -> dict[str, float]:
    """Medians of each client's items/s (wall, CPU), and of the per-repetition ratios
    runner/loop (``"wall ratio"``, ``"cpu ratio"``)."""
    results: dict[str, list[tuple[float, float]]] = {"loop": [], "runner": []}
    with simulators("firehose", 1) as (address,):
        for rep in range(sizes.reps):
            pair = [("loop", hand_written), ("runner", with_runner)]
            for name, body in pair if rep % 2 == 0 else reversed(pair):
                results[name].append(anyio.run(timed, address, body, sizes))
    rates = {
        f"{name} {unit}": statistics.median(run[column] for run in runs)
        for name, runs in results.items()
        for column, unit in enumerate(("wall", "cpu"))
    }
    for column, unit in enumerate(("wall", "cpu")):
        rates[f"{unit} ratio"] = statistics.median(
            runner[column] / loop[column]
            for runner, loop in zip(results["runner"], results["loop"], strict=True)
        )
    return rates


# -- 2. hosts -----------------------------------------------------------------------------------


async def paced_run(addresses: list[str], count: int) -> float:
    prompts = [f"prompt {n}" for n in range(count)]
    async with AsyncExitStack() as clients:
        models = []
        for address in addresses:
            client = await clients.enter_async_context(lms.LMStudioClient(address))
            models.append(await client.llm.model(MODEL))
        started = time.perf_counter()
        async with run_batch(models, prompts, concurrency=PER_HOST) as run:
            progress = await run.wait()
        elapsed = time.perf_counter() - started
    assert progress.done == count
    assert progress.failed == 0
    return count / elapsed


def hosts(sizes: Sizes) -> tuple[float, float]:
    count = sizes.hosts_prompts
    one: list[float] = []
    four: list[float] = []
    for _ in range(sizes.reps):
        with simulators("paced", 1, count) as addresses:
            one.append(anyio.run(paced_run, addresses, count))
        with simulators("paced", 4, count) as addresses:
            four.append(anyio.run(paced_run, addresses, count))
    return statistics.median(one), statistics.median(four)


# -- 3. kill and resume -------------------------------------------------------------------------


def kill_and_resume(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    count = sizes.resume_prompts
    prompts = workdir / "prompts.txt"
    prompts.write_text("".join(f"prompt {n}\n" for n in range(count)), encoding="utf-8")
    out = workdir / "out.jsonl"
    out.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "LMSTUDIO_BASE_URL"}
    with simulators("firehose", 1) as (address,):
        command = [
            sys.executable, "-m", "lmstudio_async", "batch", str(prompts), "-o", str(out),
            "--host", address, "--concurrency", "16", "--max-tokens", "20",
        ]  # fmt: skip
        with subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL) as process:
            while (out.read_bytes().count(b"\n") if out.exists() else 0) < count // 3:
                if process.poll() is not None:
                    raise RuntimeError("the batch finished before it could be killed")
                time.sleep(0.01)  # polling a file another process writes
            process.send_signal(signal.SIGKILL)
        before = out.read_bytes().count(b"\n")
        resumed = subprocess.run(
            [*command, "--resume"], env=env, capture_output=True, text=True, check=False
        )
        if resumed.returncode != 0:
            raise RuntimeError(f"resume failed: {resumed.stderr[-2000:]}")
    lines = out.read_text(encoding="utf-8").splitlines()
    indices = [json.loads(line)["index"] for line in lines]
    return {
        "count": count,
        "kept_at_kill": before,
        "lines": len(lines),
        "distinct": len(set(indices)),
        "complete": sorted(indices) == list(range(count)),
    }


# -- report -------------------------------------------------------------------------------------


def report(
    sizes: Sizes,
    elapsed: float,
    rates: dict[str, float],
    host_rates: tuple[float, float],
    resume: dict[str, Any],
) -> str:
    one, four = host_rates
    wall_ratio = rates["wall ratio"]
    cpu_ratio = rates["cpu ratio"]
    scaling = four / one
    resume_ok = resume["complete"] and resume["lines"] == resume["count"]
    b1 = (
        f"B1. {sizes.overhead_prompts:,} prompts x {sizes.overhead_fragments} fragments, "
        f"{sizes.overhead_concurrency} in flight"
    )
    rows = [
        f"Generated by `uv run python benchmarks/batch_runner.py` in {elapsed:.0f} s; "
        f"median of {sizes.reps} repetition(s).",
        "",
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "| scenario | client | items/s (wall) | items per client CPU second |",
        "|---|---|---|---|",
        f"| {b1} | hand-written limiter loop | {rates['loop wall']:,.0f} "
        f"| {rates['loop cpu']:,.0f} |",
        f"| {b1} | `run_batch` | {rates['runner wall']:,.0f} | {rates['runner cpu']:,.0f} |",
        f"| B2. {sizes.hosts_prompts} paced prompts, {PER_HOST} in flight per host "
        f"| one host | {one:,.1f} | n/a |",
        f"| B2. same | four hosts | {four:,.1f} | n/a |",
        "",
        f"B3. {resume['count']:,} prompts through `lmstudio-async batch`, SIGKILLed with "
        f"{resume['kept_at_kill']:,} results written, then `--resume`: {resume['lines']:,} "
        f"lines, {resume['distinct']:,} distinct indices.",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        f"| B1: runner >= 0.95x the loop's throughput (items/s of wall time; median of the "
        f"per-repetition ratios) | {wall_ratio:.3f}x "
        f"| {'yes' if wall_ratio >= 0.95 else '**no**'} |",
        f"| B1 per client CPU second (median of the per-repetition ratios) | {cpu_ratio:.3f}x "
        f"| {'yes' if cpu_ratio >= 0.95 else '**no**'} |",
        f"| B2: four hosts >= 3.5x one | {scaling:.2f}x | "
        f"{'yes' if scaling >= 3.5 else '**no**'} |",
        f"| B3: exactly {resume['count']:,} distinct results, none twice | "
        f"{resume['distinct']:,} distinct in {resume['lines']:,} lines | "
        f"{'yes' if resume_ok else '**no**'} |",
    ]
    return "\n".join(rows)


def write_results(path: Path, text: str) -> None:
    block = f"{START}\n{text}\n{END}"
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if START in current and END in current:
        head, rest = current.split(START, 1)
        updated = head + block + rest.split(END, 1)[1]
    else:
        updated = current.rstrip("\n") + "\n\n## Batch runner\n\n" + block + "\n"
    path.write_text(updated, encoding="utf-8")


def main() -> int:
    if len(sys.argv) >= 2 and sys.argv[1] == "serve":
        anyio.run(serve, sys.argv[2], int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repetition")
    parser.add_argument("--reps", type=int, help="repetitions (default 3; 1 with --quick)")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "benchmarks" / "RESULTS.md", help="results file"
    )
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    if args.reps is not None:
        sizes = Sizes(**{**sizes.__dict__, "reps": args.reps})
    started = time.perf_counter()
    overhead_rates = overhead(sizes)
    print(f"B1: {overhead_rates}", file=sys.stderr)
    host_rates = hosts(sizes)
    print(f"B2 one/four hosts items/s: {host_rates}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as workdir:
        resume = kill_and_resume(sizes, Path(workdir))
    print(f"B3: {resume}", file=sys.stderr)
    text = report(sizes, time.perf_counter() - started, overhead_rates, host_rates, resume)
    write_results(args.output, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

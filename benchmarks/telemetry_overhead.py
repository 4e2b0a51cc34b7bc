"""What OpenTelemetry support costs a prediction: nothing when off, a little when on.

Usage (from the repository root)::

    uv run python benchmarks/telemetry_overhead.py            # ~20 s on 2 cores
    uv run python benchmarks/telemetry_overhead.py --quick    # a smoke run

Two measurements:

* the hook itself with telemetry off (the default): what every ``respond()`` pays, timed with
  ``timeit`` (nanoseconds; fragments pay nothing, there is no per-fragment hook);
* whole predictions against the in-process simulator's firehose (a 100-fragment reply each),
  telemetry off versus on with the OpenTelemetry SDK's providers (no exporter), alternating
  rounds so machine load drifts over both. Medians with min-max.
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit

import anyio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

import lmstudio_async as lms
from lmstudio_async import _telemetry
from lmstudio_async.testing import Simulator


async def predictions_per_second(client: lms.LMStudioClient, count: int) -> float:
    model = await client.llm.model("qwen2.5-7b-instruct")
    started = time.perf_counter()
    for _ in range(count):
        async for _fragment in model.respond("Go"):
            pass
    return count / (time.perf_counter() - started)


async def main(rounds: int, count: int) -> None:
    lms.disable_opentelemetry()
    hook = timeit.Timer(lambda: _telemetry.prediction("chat", "m", (), None))
    loops, total = hook.autorange()
    print(f"hook with telemetry off: {total / loops * 1e9:.0f} ns per prediction")

    tracer_provider, meter_provider = TracerProvider(), MeterProvider()
    results: dict[str, list[float]] = {"off": [], "on": []}
    async with Simulator(firehose=True) as sim, lms.LMStudioClient(sim.base_url) as client:
        await predictions_per_second(client, max(count // 10, 1))  # warm up
        for round_ in range(rounds):
            order = ("off", "on") if round_ % 2 == 0 else ("on", "off")
            for mode in order:
                if mode == "on":
                    lms.enable_opentelemetry(
                        tracer_provider=tracer_provider, meter_provider=meter_provider
                    )
                else:
                    lms.disable_opentelemetry()
                results[mode].append(await predictions_per_second(client, count))
    lms.disable_opentelemetry()
    for mode, values in results.items():
        print(
            f"telemetry {mode:>3}: {statistics.median(values):8.0f} predictions/s "
            f"(min {min(values):.0f}, max {max(values):.0f}, {rounds} rounds of {count})"
        )


if __name__ == "__main__":
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    args = arguments.parse_args()
    anyio.run(main, 2 if args.quick else 6, 20 if args.quick else 300)

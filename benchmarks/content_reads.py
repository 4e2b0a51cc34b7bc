"""What reading ``prediction.content`` after every fragment costs, as the reply grows.

Usage (from the repository root)::

    uv run python benchmarks/content_reads.py            # ~1 s
    uv run python benchmarks/content_reads.py --quick    # a smoke run

The README's ``if len(prediction.content) > 200`` inside the loop reads the text so far once
per fragment. This drives the prediction's accumulator directly (no socket, so only this cost
is measured) with N fragments of 4 characters, adding only versus adding and reading the
content each time, for doubling N. Reading should add a constant per fragment: the "per
fragment" column stays flat when N doubles (it grew linearly, i.e. quadratic overall, before
the text was kept and extended in place).
"""

from __future__ import annotations

import argparse
import time

from lmstudio_async._prediction import PredictionAccumulator
from lmstudio_async.types import PredictionFragment


def _run(fragments: list[PredictionFragment], *, read: bool) -> float:
    accumulator = PredictionAccumulator()
    started = time.perf_counter()
    for fragment in fragments:
        accumulator.add(fragment)
        if read:
            len(accumulator.content)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    sizes = [1_000, 2_000] if args.quick else [40_000, 80_000, 160_000, 320_000]
    print(f"{'fragments':>10} {'add only':>10} {'add+read':>10} {'read, per fragment':>20}")
    for count in sizes:
        fragments = [PredictionFragment(content="abcd", tokens_count=1) for _ in range(count)]
        add_only = min(_run(fragments, read=False) for _ in range(3))
        with_reads = min(_run(fragments, read=True) for _ in range(3))
        per_fragment = (with_reads - add_only) / count * 1e9
        print(f"{count:>10} {add_only:>9.3f}s {with_reads:>9.3f}s {per_fragment:>17.0f} ns")


if __name__ == "__main__":
    main()

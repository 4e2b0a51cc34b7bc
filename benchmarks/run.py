"""Benchmark lmstudio_async against the official SDK, AsyncOpenAI and a bare aiohttp floor.

Usage (from the repository root)::

    uv run python benchmarks/run.py            # full run (~22 min on 2 cores), writes RESULTS.md
    uv run python benchmarks/run.py --quick    # tiny sizes, one repetition (smoke test)

The servers (the websocket firehose ``benchmarks/_firehose_server.py``, and the simulator for
openai and for the stalled memory scenario) run in one process of their own
(``benchmarks/_server.py``); every measurement runs in a fresh worker process
(``benchmarks/_worker.py``), clients alternating within each repetition (the starting client
rotates) so drift in machine load spreads over all of them. Results are medians with the
min-max range. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_worker.py"
SERVER = HERE / "_server.py"
RESULTS = HERE / "RESULTS.md"
START, END = "<!-- generated:start -->", "<!-- generated:end -->"

CLIENTS = ("ours", "official", "openai", "floor")
LABELS = {
    "ours": "lmstudio_async",
    "official": "lmstudio AsyncClient",
    "openai": "openai AsyncOpenAI (SSE)",
    "floor": "floor (aiohttp+msgspec)",
}
IMPORTS = {"ours": "lmstudio_async", "official": "lmstudio", "openai": "openai"}
# Ours and the floor take about a second per throughput run, the others 10-30 s: the pair the
# 0.5x target compares gets extra repetitions (FAST_REPS_MIN), since its throughput swings
# with the machine's load.
FAST = frozenset({"ours", "floor"})
FAST_REPS_MIN = 9


@dataclass(frozen=True)
class Sizes:
    single: int
    medium: tuple[int, int]  # predictions, fragments each
    many: tuple[int, int]
    in_flight: int  # scenario 5, ours and the floor
    in_flight_others: int  # scenario 5, official SDK and openai (they are far slower to set up)
    reps: int


FULL = Sizes(100_000, (100, 1_000), (1_000, 100), 10_000, 1_000, 5)
# Cold start takes about a second per run and is the noisiest measurement (it is mostly
# interpreter start-up and imports from disk cache), so it gets more repetitions.
COLD_REPS_MIN = 11
QUICK = Sizes(1_000, (5, 50), (20, 5), 100, 20, 1)


@dataclass
class Row:
    scenario: str
    metric: str
    higher_is_better: bool
    key: str = ""  # how targets() finds the row, e.g. "2/interleaved/rate"
    percent: bool = False
    values: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)
    note: str = ""

    def median(self, client: str) -> float | None:
        values = self.values.get(client)
        return statistics.median(values) if values else None


def _worker(client: str, scenario: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(WORKER), client, scenario, json.dumps(params)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{client}/{scenario} failed: {tail}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _wait_until_idle(port: int, limit: float = 60.0) -> None:
    """Wait until the server answers its greeting promptly again.

    The previous memory run left thousands of stalled predictions for the server to tear down;
    a client that connects meanwhile (the official SDK probes the greeting with a 1 s timeout)
    would measure the server's clean-up, not itself.
    """
    deadline = time.perf_counter() + limit
    url = f"http://127.0.0.1:{port}/lmstudio-greeting"
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                response.read()
        except OSError:
            time.sleep(0.2)
            continue
        if time.perf_counter() - started < 0.05:
            return
        time.sleep(0.2)


def _precompile() -> None:
    """Write bytecode for every installed package and this repository, as a normal install has.

    Measurements run in fresh interpreters, so with no ``.pyc`` files each one would compile
    every imported module from source first (this machine sets ``PYTHONDONTWRITEBYTECODE``,
    and ``uv sync`` does not compile by default), and cold start and import time would measure
    the compiler. ``compileall`` writes the files regardless of that variable; reading them is
    unaffected by it.
    """
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    targets = [*sorted(paths), str(HERE.parent / "lmstudio_async"), str(HERE)]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", *targets],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _rotated(clients: Sequence[str], rep: int) -> list[str]:
    """``clients`` starting at the ``rep``-th (cyclically); none for none (e.g. only openai
    selected for an interleaved scenario, which it has no run of)."""
    if not clients:
        return []
    k = rep % len(clients)
    return [*clients[k:], *clients[:k]]


def _measure(
    rows: Sequence[Row],
    keys: Sequence[str],
    clients: Sequence[str],
    scenario: str,
    params_for: Any,
    reps: int,
    timeout: float,
    settle: Callable[[], None] | None = None,
    fast_reps: int = 0,
) -> None:
    """Run every client ``reps`` times, and the cheap ``FAST`` ones ``fast_reps`` times if more."""
    for rep in range(max(reps, fast_reps)):
        measured = clients if rep < reps else [c for c in clients if c in FAST]
        for client in _rotated(measured, rep):
            if settle is not None:
                settle()
            try:
                result = _worker(client, scenario, params_for(client), timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                # A failed run is reported, and the client keeps its other repetitions.
                for row in rows:
                    row.failures.setdefault(client, []).append(str(exc))
                print(f"  ! {exc}", file=sys.stderr)
                continue
            for row, key in zip(rows, keys, strict=True):
                row.values.setdefault(client, []).append(result[key])
            if "server_cpu_s" in result:
                # Beside every run: how busy the server was. A server on a CPU for most of the
                # run's wall time would be setting the pace, not the client.
                print(
                    f"    {client}: {result['fragments_per_s']:,.0f} fragments/s; server CPU "
                    f"{result['server_cpu_s']:.3f} s = {result['server_busy']:.0%} of "
                    f"{result['wall_s']:.3f} s wall",
                    file=sys.stderr,
                )
        total = max(reps, fast_reps)
        print(f"  {rows[0].scenario}: repetition {rep + 1}/{total} done", file=sys.stderr)


def _import_time(module: str, reps: int) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    runs = []
    for _ in range(reps if reps == 1 else max(reps, 3)):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        runs.append(float(out.strip()))
    return min(runs)


def run(sizes: Sizes, clients: Sequence[str]) -> list[Row]:
    server = subprocess.Popen(
        [sys.executable, str(SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        ports = json.loads(server.stdout.readline())
        return _run_all(sizes, clients, ports, server.pid)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


# A single channel's fragments are the same bytes in either interleaving, so scenario 1 runs
# once; the concurrent scenarios run against both.
INTERLEAVINGS = {
    "1": ("sequential",),
    "2": ("sequential", "interleaved"),
    "3": ("sequential", "interleaved"),
}
INTERLEAVING_LABELS = {
    ("1", "sequential"): "one channel",
    ("2", "sequential"): "channels one after another",
    ("2", "interleaved"): "channels interleaved frame by frame",
    ("3", "sequential"): "channels one after another",
    ("3", "interleaved"): "channels interleaved frame by frame",
}


def _run_all(
    sizes: Sizes, clients: Sequence[str], ports: dict[str, int], server_pid: int
) -> list[Row]:
    rows: list[Row] = []
    reps = sizes.reps
    streams = [
        ("1", "1. one stream", 1, sizes.single),
        ("2", "2. concurrent", *sizes.medium),
        ("3", "3. many concurrent", *sizes.many),
    ]
    for number, name, predictions, fragments in streams:
        for interleaving in INTERLEAVINGS[number]:
            label = INTERLEAVING_LABELS[number, interleaving]
            title = f"{name}: {predictions:,} x {fragments:,} fragments, {label}"
            key = f"{number}/{interleaving}"
            rate = Row(title, "fragments/s", True, key=f"{key}/rate")
            cpu = Row(title, "CPU s per 100k fragments", False, key=f"{key}/cpu")
            busy = Row(title, "server CPU, share of run wall time", False, key=f"{key}/server")
            busy.percent = True
            if predictions > 1:
                rate.note = "every fragment checked against its prediction"
            print(title, file=sys.stderr)
            # AsyncOpenAI reads one HTTP stream per prediction from the simulator's SSE
            # endpoint: there is no socket shared by predictions to interleave on.
            measured = [c for c in clients if c != "openai" or interleaving == "sequential"]

            def params(
                client: str, n: int = predictions, f: int = fragments, i: str = interleaving
            ) -> dict[str, Any]:
                port = ports["openai"] if client == "openai" else ports[i]
                return {"port": port, "fragments": f, "predictions": n, "server_pid": server_pid}

            _measure(
                [rate, cpu, busy],
                ["fragments_per_s", "cpu_s_per_100k", "server_busy"],
                measured,
                "stream",
                params,
                reps,
                300,
                fast_reps=reps if reps == 1 else max(reps, FAST_REPS_MIN),
            )
            rows += [rate, cpu, busy]
            floor, busiest = (
                rate.median("floor"),
                max((m for c in measured if (m := busy.median(c)) is not None), default=None),
            )
            if floor is not None and busiest is not None:
                print(
                    f"  {title}: bare loop (floor) {floor:,.0f} fragments/s; the server's "
                    f"busiest median CPU share {busiest:.0%}",
                    file=sys.stderr,
                )

    title = "4. cold start: import + connect + respond (8 fragments) + close"
    print(title, file=sys.stderr)
    cold = Row(title, "wall s from process start", False)
    cold_reps = reps if reps == 1 else max(reps, COLD_REPS_MIN)
    cold.key = "cold"
    _measure(
        [cold],
        ["wall_s"],
        clients,
        "cold",
        lambda c: {"port": ports["openai" if c == "openai" else "sequential"]},
        cold_reps,
        120,
    )
    rows.append(cold)

    title = "5. memory: in-flight predictions on a stalled server"
    print(title, file=sys.stderr)
    memory = Row(title, "bytes RSS per in-flight prediction", False, key="memory")
    memory.note = (
        f"{sizes.in_flight:,} predictions for ours and the floor, {sizes.in_flight_others:,} "
        "for the official SDK and openai; each held by one asyncio task"
    )

    def memory_params(client: str) -> dict[str, Any]:
        count = sizes.in_flight if client in ("ours", "floor") else sizes.in_flight_others
        return {"port": ports["stall"], "predictions": count}

    _measure(
        [memory],
        ["bytes_per_prediction"],
        clients,
        "memory",
        memory_params,
        reps,
        300,
        settle=lambda: _wait_until_idle(ports["stall"]),
    )
    rows.append(memory)

    title = "6. import time (fresh interpreter, min of runs)"
    print(title, file=sys.stderr)
    imports = Row(title, "seconds", False, key="import")
    for client in clients:
        module = IMPORTS.get(client)
        if module is not None:
            imports.values[client] = [_import_time(module, reps)]
    rows.append(imports)
    return rows


# ---- reporting ---------------------------------------------------------------------------


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _cell(row: Row, client: str) -> str:
    values = row.values.get(client)
    failed = len(row.failures.get(client, ()))
    if not values:
        return "failed" if failed else "n/a"
    fmt = (lambda v: f"{v:.0%}") if row.percent else _fmt
    if len(values) == 1:
        text = fmt(values[0])
    else:
        text = f"{fmt(statistics.median(values))} ({fmt(min(values))}-{fmt(max(values))})"
    return text + (f" [{failed} run(s) failed]" if failed else "")


def table(rows: Sequence[Row], clients: Sequence[str]) -> str:
    head = "| scenario | metric | " + " | ".join(LABELS[c] for c in clients) + " |"
    lines = [head, "|" + "---|" * (len(clients) + 2)]
    for row in rows:
        cells = " | ".join(_cell(row, c) for c in clients)
        lines.append(f"| {row.scenario} | {row.metric} | {cells} |")
    return "\n".join(lines)


def _row(rows: Sequence[Row], key: str) -> Row | None:
    return next((row for row in rows if row.key == key), None)


def _ratio(rows: Sequence[Row], key: str, a: str, b: str) -> float | None:
    """Median of ``a`` over median of ``b`` in the row ``key``."""
    row = _row(rows, key)
    if row is None:
        return None
    x, y = row.median(a), row.median(b)
    if x is None or y is None or y == 0:
        return None
    return x / y


def _worst_ratio(rows: Sequence[Row], scenario: str, a: str, b: str) -> tuple[float, str] | None:
    """The lower of ``a``/``b`` over the scenario's interleavings, and which one it was."""
    measured = [
        (ratio, interleaving)
        for interleaving in INTERLEAVINGS[scenario]
        if (ratio := _ratio(rows, f"{scenario}/{interleaving}/rate", a, b)) is not None
    ]
    return min(measured) if measured else None


def targets(rows: Sequence[Row]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for every target; throughput on the worse interleaving."""
    checks: list[tuple[str, str, bool | None]] = []

    def add(name: str, value: float | None, ok: Any, unit: str = "x", where: str = "") -> None:
        if value is None:
            checks.append((name, "not measured", None))
        else:
            checks.append((name, f"{value:.2f}{unit}{where}", bool(ok(value))))

    def add_worst(name: str, scenario: str, other: str, ok: Any) -> None:
        worst = _worst_ratio(rows, scenario, "ours", other)
        if worst is None:
            add(name, None, ok)
        elif len(INTERLEAVINGS[scenario]) == 1:
            add(name, worst[0], ok)
        else:
            add(name, worst[0], ok, where=f" ({worst[1]})")

    for scenario in ("1", "2", "3"):
        add_worst(
            f"S{scenario}: ours ≥ 0.5x floor fragments/s", scenario, "floor", lambda v: v >= 0.5
        )
        add_worst(f"S{scenario}: ours ≥ 10x official SDK", scenario, "official", lambda v: v >= 10)
        add_worst(f"S{scenario}: ours ≥ 15x AsyncOpenAI", scenario, "openai", lambda v: v >= 15)
    many = [_row(rows, f"3/{i}/rate") for i in INTERLEAVINGS["3"]]
    delivered = all(r is not None and "ours" in r.values and "ours" not in r.failures for r in many)
    checks.append(
        (
            "S3: every fragment delivered to the right prediction",
            "yes" if delivered else "no",
            delivered,
        )
    )
    # The server must not set the pace: busiest median over every throughput run of ours and
    # the floor (the pair the 0.5x target compares).
    busy = [
        median
        for row in rows
        if row.key.endswith("/server")
        for client in ("ours", "floor")
        if (median := row.median(client)) is not None
    ]
    add(
        "S1-S3: server CPU ≤ 50% of run wall time (busiest median, ours and floor)",
        max(busy) * 100 if busy else None,
        lambda v: v <= 50,
        "%",
    )
    add(
        "S4: ours ≤ 0.6x official SDK wall time",
        _ratio(rows, "cold", "ours", "official"),
        lambda v: v <= 0.6,
    )
    memory_row = _row(rows, "memory")
    memory = None if memory_row is None else memory_row.median("ours")
    add(
        "S5: ≤ 4 KB per in-flight prediction",
        None if memory is None else memory / 1024,
        lambda v: v <= 4,
        " KB",
    )
    add(
        "S6: import ≤ 0.5x `import lmstudio`",
        _ratio(rows, "import", "ours", "official"),
        lambda v: v <= 0.5,
    )
    return checks


def _machine() -> list[str]:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("lmstudio-async", "lmstudio", "openai", "aiohttp", "msgspec", "httpx")
        if _installed(name)
    )
    return [
        f"- Code: {_code_version()}",
        f"- Machine: {cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()})",
        f"- Packages: {versions}",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
    ]


def _code_version() -> str:
    """The commit measured (``git rev-parse --short HEAD``) and whether the tree had changes.

    A table is only comparable with the code it was measured on; the package version stays
    the same across commits. Uncommitted changes under benchmarks/ count too: they change
    what is measured.
    """

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=HERE.parent, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    state = "with uncommitted changes" if dirty else "working tree clean"
    return f"commit {commit} ({state})"


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def report(rows: Sequence[Row], clients: Sequence[str], sizes: Sizes, elapsed: float) -> str:
    lines = [
        f"Generated by `uv run python benchmarks/run.py` in {elapsed:.0f} s; "
        f"{sizes.reps} repetition(s) per client (ours and the floor: "
        f"{sizes.reps if sizes.reps == 1 else max(sizes.reps, FAST_REPS_MIN)} in scenarios "
        "1-3), median (min-max).",
        "",
        *_machine(),
        "",
        table(rows, clients),
        "",
    ]
    notes = [f"- {row.scenario}: {row.note}" for row in rows if row.note]
    lines += [*notes, ""] if notes else []
    # The rows of one measurement (rate, CPU, server share) carry the same failures: one line.
    errors = list(
        dict.fromkeys(
            f"- {LABELS[c]}, {row.scenario}: {len(es)} of {len(es) + len(row.values.get(c, []))} "
            f"run(s) failed; last: {es[-1]}"
            for row in rows
            for c, es in row.failures.items()
        )
    )
    if errors:
        lines += ["Failures:", *errors, ""]
    if "floor" in clients and "ours" in clients:
        lines += ["| target | measured | met |", "|---|---|---|"]
        for name, value, ok in targets(rows):
            mark = "n/a" if ok is None else ("yes" if ok else "**no**")
            lines.append(f"| {name} | {value} | {mark} |")
        lines += ["", *ratios(rows)]
    return "\n".join(lines)


def ratios(rows: Sequence[Row]) -> list[str]:
    """Per scenario and interleaving: ours over the floor by throughput and by CPU time, and
    over the official SDK. The CPU ratio (floor CPU per fragment over ours) moves far less with
    the machine's load than throughput does: it is what code changes are judged by."""
    lines = [
        "| scenario | ours / floor, fragments/s | ours / floor, CPU per fragment (inverse) "
        "| ours / official SDK, fragments/s |",
        "|---|---|---|---|",
    ]
    for scenario, interleavings in INTERLEAVINGS.items():
        for interleaving in interleavings:
            key = f"{scenario}/{interleaving}"
            rate = _row(rows, f"{key}/rate")
            if rate is None:
                continue
            cells = [
                _ratio(rows, f"{key}/rate", "ours", "floor"),
                _ratio(rows, f"{key}/cpu", "floor", "ours"),
                _ratio(rows, f"{key}/rate", "ours", "official"),
            ]
            text = " | ".join("n/a" if c is None else f"{c:.2f}x" for c in cells)
            lines.append(f"| {rate.scenario} | {text} |")
    return lines


def write_results(path: Path, generated: str) -> None:
    """Replace the generated block of ``path``, keeping the hand-written analysis around it."""
    block = f"{START}\n{generated}\n{END}"
    if path.exists():
        text = path.read_text()
        if START in text and END in text:
            before, rest = text.split(START, 1)
            after = rest.split(END, 1)[1]
            path.write_text(before + block + after)
            return
    path.write_text(f"# Benchmark results\n\n{block}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 repetition")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per client")
    parser.add_argument(
        "--clients", default=",".join(CLIENTS), help=f"comma-separated subset of {CLIENTS}"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="markdown file to update (default: benchmarks/RESULTS.md; none with --quick)",
    )
    args = parser.parse_args(argv)
    clients = [c for c in args.clients.split(",") if c]
    if not clients:
        parser.error(f"--clients names no client; choose one or more of {CLIENTS}")
    unknown = set(clients) - set(CLIENTS)
    if unknown:
        parser.error(f"unknown client(s) {sorted(unknown)}; choose from {CLIENTS}")
    sizes = QUICK if args.quick else FULL
    if args.reps is not None:
        if args.reps < 1:
            parser.error("--reps must be at least 1")
        sizes = Sizes(**{**sizes.__dict__, "reps": args.reps})
    started = time.perf_counter()
    _precompile()
    rows = run(sizes, clients)
    text = report(rows, clients, sizes, time.perf_counter() - started)
    print(text)
    output = args.output if args.output is not None else (None if args.quick else RESULTS)
    if output is not None:
        write_results(output, text)
        print(f"\nwrote {output}", file=sys.stderr)
    # Comparison clients failing under load is a finding to report, not a broken benchmark;
    # ours failing is.
    return 1 if any("ours" in row.failures or "floor" in row.failures for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

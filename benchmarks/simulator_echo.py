"""Echo a huge prompt through ``lmstudio-async chat --host`` against ``lmstudio-async simulate``.

The simulator's default reply echoes the prompt (``You said: <prompt>``), one fragment per
word, so a 10.8 MB prompt is a 10.8 MB, 1.8-million-fragment reply. Before the simulator's
per-fragment work became constant (recording content as pieces; several frames per socket
write when unpaced) this cost 6 s of simulator CPU at 0.8 MB, 45 s at 3.2 MB and 8 min 42 s
at 10.8 MB. Both programs run as separate processes, exactly as a user would run them; the
prompt goes to ``chat`` on stdin (one line = one message) since it is too long for argv.

    uv run python benchmarks/simulator_echo.py                 # 0.8, 3.2 and 10.8 MB
    uv run python benchmarks/simulator_echo.py --sizes 0.1,1   # other sizes, in MB

Prints a Markdown table: wall time of ``chat`` (connect, prompt upload, the whole streamed
reply, exit) and CPU seconds the simulator process spent (from ``/proc``, Linux only).
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

CLI = (sys.executable, "-m", "lmstudio_async")
WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")


def make_prompt(megabytes: float) -> str:
    """Words separated by spaces, ``megabytes`` million characters (ASCII, so bytes too)."""
    target = int(megabytes * 1_000_000)
    pieces: list[str] = []
    size = 0
    for word in itertools.cycle(WORDS):
        if size >= target:
            break
        pieces.append(word)
        size += len(word) + 1
    return " ".join(pieces)[:target].strip()


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process, or None where /proc is not available."""
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        return None
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(megabytes: float) -> tuple[float, float | None]:
    """(wall seconds of ``chat``, simulator CPU seconds) for one echo of that size."""
    prompt = make_prompt(megabytes)
    server = subprocess.Popen(
        [*CLI, "simulate", "--port", "0", "--quiet", "--no-context-limit"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        address = server.stdout.readline().split()[4].removeprefix("ws://")
        idle_cpu = process_cpu_seconds(server.pid)
        started = time.perf_counter()
        chat = subprocess.run(
            [*CLI, "chat", "--host", address],
            input=prompt + "\n",
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - started
        cpu = process_cpu_seconds(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    if chat.stdout != f"You said: {prompt}\n":
        raise SystemExit(f"the echo of {megabytes} MB came back wrong ({len(chat.stdout)} chars)")
    used = None if cpu is None or idle_cpu is None else cpu - idle_cpu
    return wall, used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0.8,3.2,10.8", help="prompt sizes in MB (comma list)")
    sizes = [float(s) for s in parser.parse_args().sizes.split(",")]
    print("| prompt | fragments | `chat` wall time | simulator CPU |")
    print("|---:|---:|---:|---:|")
    for megabytes in sizes:
        wall, cpu = measure(megabytes)
        fragments = len(make_prompt(megabytes).split()) + 2  # plus "You " and "said: "
        shown = "n/a" if cpu is None else f"{cpu:.1f} s"
        print(f"| {megabytes} MB | {fragments:,} | {wall:.1f} s | {shown} |", flush=True)


if __name__ == "__main__":
    main()

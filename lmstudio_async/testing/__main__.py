"""``python -m lmstudio_async.testing``: run the simulator in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

import anyio

from ._catalog import read_catalog
from ._server import Simulator


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, serve until interrupted, return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m lmstudio_async.testing", description="Run the LM Studio simulator."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=1234, help="port to bind (0 = any free)")
    parser.add_argument("--api-token", default=None, help="require this sk-lm-... API token")
    parser.add_argument("--catalog", metavar="FILE", help="JSON catalogue of downloaded models")
    args = parser.parse_args(argv)
    try:
        models = read_catalog(args.catalog) if args.catalog is not None else None
    except ValueError as exc:
        parser.error(str(exc))

    async def run() -> None:
        async with Simulator(
            host=args.host,
            port=args.port,
            api_token=args.api_token,
            catalog=None if models is None else models.models,
            loaded=None if models is None else models.loaded,
        ) as sim:
            print(f"LM Studio simulator serving {sim.base_url} (Ctrl-C to stop)", flush=True)
            await anyio.sleep_forever()

    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(run)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``lmstudio-async simulate``: serve the bundled LM Studio simulator until Ctrl-C."""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from typing import Any

import anyio

from ._interrupts import Interrupts
from ._verbose import add_verbose_argument

__all__ = ["add_simulate_command", "add_simulator_options", "simulator_options"]

_PREDICTIONS_LOGGER = "lmstudio_async.testing.predictions"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_simulator_options(parser: argparse.ArgumentParser, *, with_simulate: bool = False) -> None:
    """``--script``, ``--tokens-per-second``, ``--no-context-limit``: how the simulator answers."""
    needs = "with --simulate: " if with_simulate else ""
    parser.add_argument(
        "--script",
        metavar="FILE",
        help=needs
        + 'answer predictions by the rules in this JSON file: {"rules": [{"match": {"model", '
        '"last_user_message" (a Python re regex, searched anywhere in the message), '
        '"last_message_role", "has_tools", "endpoint", "times"}, "reply": {"content", '
        '"fragments", "reasoning", "tool_calls": [{"name", "arguments", "id", "fail"}], '
        '"stop_reason", "time_to_first_token", "tokens_per_second", "prompt_tokens_per_second", '
        '"error", "prompt_tokens"}}]}; first match wins, unmatched predictions get the default '
        "reply",
    )
    parser.add_argument(
        "--tokens-per-second",
        type=_positive_float,
        metavar="N",
        help=needs + "pace replies that set no pacing of their own at N fragments per second "
        "(default: as fast as possible)",
    )
    parser.add_argument(
        "--no-context-limit",
        action="store_true",
        help=needs + "let prompts of any size fit (default: enforce the loaded context length "
        "and contextOverflowPolicy like LM Studio)",
    )


def simulator_options(args: argparse.Namespace, prog: str) -> dict[str, Any] | None:
    """``Simulator(...)`` keyword arguments from the options, or None after printing why not."""
    from ..testing import ScriptFileError, load_rules

    options: dict[str, Any] = {
        "tokens_per_second": args.tokens_per_second,
        "enforce_context_length": not args.no_context_limit,
    }
    if args.script is not None:
        try:
            options["rules"] = load_rules(args.script)
        except ScriptFileError as exc:
            print(f"{prog}: --script {args.script}: {exc}", file=sys.stderr)
            return None
    return options


def add_simulate_command(commands: Any) -> None:
    parser = commands.add_parser(
        "simulate",
        help="run the bundled LM Studio simulator in the foreground",
        description="Serve the LM Studio simulator (lmstudio_async.testing) until Ctrl-C; point "
        "any LM Studio client at the printed address. One line per finished prediction goes to "
        "stderr (connection, channel, model, endpoint, outcome, whether a cancel was received, "
        "fragments sent).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=1234, help="port to bind, 0 for any free one (default: 1234)"
    )
    parser.add_argument("--api-token", help="require this sk-lm-... API token from clients")
    add_simulator_options(parser)
    parser.add_argument(
        "--quiet", action="store_true", help="do not log a line per finished prediction"
    )
    parser.add_argument(
        "--catalog",
        metavar="FILE",
        help='JSON catalogue of downloaded models ({"models": [{"modelKey": ..., "path": ..., '
        '"loaded": true}, ...]}; see lmstudio_async.testing.read_catalog) instead of the '
        "built-in one",
    )
    add_verbose_argument(parser)
    # Ctrl-C is how a foreground server is meant to stop: exit 0, not 130.
    parser.set_defaults(run=run_simulate, ctrl_c_is_success=True)


def _log_predictions() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger = logging.getLogger(_PREDICTIONS_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


async def run_simulate(args: argparse.Namespace, interrupts: Interrupts) -> int:
    from ..testing import Simulator, read_catalog

    options = simulator_options(args, "lmstudio-async simulate")
    if options is None:
        return 2
    try:
        models = read_catalog(args.catalog) if args.catalog is not None else None
        simulator = Simulator(
            host=args.host,
            port=args.port,
            api_token=args.api_token,
            **options,
            catalog=None if models is None else models.models,
            loaded=None if models is None else models.loaded,
        )
    except ValueError as exc:
        print(f"lmstudio-async simulate: {exc}", file=sys.stderr)
        return 2
    try:
        await simulator.start()
    except OSError as exc:
        print(f"lmstudio-async simulate: {_cannot_listen(exc, args)}", file=sys.stderr)
        return 1
    handler = None if args.quiet else _log_predictions()
    try:
        rules = options.get("rules")
        print(
            f"LM Studio simulator serving {simulator.base_url} (Ctrl-C to stop)"
            + (f"; {len(rules)} rules from {args.script}" if rules is not None else ""),
            flush=True,
        )
        print(
            f'  try: lmstudio-async chat --host {simulator.host}:{simulator.port} "Hello"',
            flush=True,
        )
        await anyio.sleep_forever()
    finally:
        # Close first: predictions still running end (as disconnected) while closing, and
        # their lines must still reach stderr.
        with anyio.CancelScope(shield=True):
            await simulator.aclose()
        if handler is not None:
            logging.getLogger(_PREDICTIONS_LOGGER).removeHandler(handler)
    return 0


def _bind_errno(exc: OSError) -> int | None:
    """The errno of a failed bind. Python 3.13+ skips addresses that are not available
    (bpo-30945) and then reports only "could not bind on any address out of [...]", with no
    errno."""
    if exc.errno is not None:
        return exc.errno
    if str(exc).startswith("could not bind on any address"):
        return errno.EADDRNOTAVAIL
    return None


def _cannot_listen(exc: OSError, args: argparse.Namespace) -> str:
    where = f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc})."
    code = _bind_errno(exc)
    if code == errno.EADDRNOTAVAIL:
        return (
            f"{where} {args.host} is not an address of this machine: pass --host 127.0.0.1 "
            "(this machine only) or --host 0.0.0.0 (every interface)."
        )
    if code == errno.EADDRINUSE:
        return f"{where} Something else uses that port: pick another --port (0 = any free one)."
    return f"{where} Check --host and --port."

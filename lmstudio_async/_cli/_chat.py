"""``lmstudio-async chat``: the reply streams to stdout, a stats line to stderr."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio

from .._namespaces import LLM
from ..types.chat import Chat
from ..types.prediction import PredictionResult
from ._connect import add_connection_arguments, connected_client
from ._interrupts import EXIT_INTERRUPTED, Interrupts
from ._progress import ProgressBar
from ._simulate import add_simulator_options, simulator_options

__all__ = ["add_chat_command"]

# After Ctrl-C asked LM Studio to stop, how long to wait for its final packet before giving up.
_CANCEL_GRACE_SECONDS = 3.0
_EXIT_WORDS = frozenset({"/exit", "/quit"})


def add_chat_command(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "chat",
        help="chat with a model (one prompt, or interactively)",
        description="Stream a model's reply to stdout; a stats line goes to stderr. Without a "
        "PROMPT, read one message per line from stdin until EOF or /exit (multi-turn).",
    )
    parser.add_argument("prompt", nargs="?", metavar="PROMPT", help="the message to send")
    parser.add_argument(
        "--model", help="model key or identifier (loaded if needed; default: any loaded LLM)"
    )
    parser.add_argument("--system", help="system prompt")
    parser.add_argument("--temperature", type=float, help="sampling temperature")
    parser.add_argument("--max-tokens", type=int, help="stop after this many tokens")
    parser.add_argument(
        "--image",
        action="append",
        dest="images",
        default=[],
        metavar="PATH",
        help="attach an image to the (first) message; repeat for several (needs a vision model)",
    )
    add_connection_arguments(parser)
    add_simulator_options(parser, with_simulate=True)
    parser.set_defaults(run=run_chat)


async def run_chat(args: argparse.Namespace, interrupts: Interrupts) -> int:
    config: dict[str, Any] = {}
    if args.temperature is not None:
        config["temperature"] = args.temperature
    if args.max_tokens is not None:
        config["max_tokens"] = args.max_tokens
    chat = Chat.empty()
    if args.system:
        chat.add_system_prompt(args.system)
    if not args.simulate and (args.script is not None or args.tokens_per_second is not None):
        print(
            "lmstudio-async chat: --script and --tokens-per-second need --simulate", file=sys.stderr
        )
        return 2
    simulator = simulator_options(args, "lmstudio-async chat") if args.simulate else {}
    if simulator is None:
        return 2
    async with connected_client(args, simulator=simulator) as client:
        # Uploaded before the model loads, so a path that is not an image fails at once.
        images = [await client.files.prepare_image(path) for path in args.images]
        model = await _get_model(client.llm, args.model)
        if args.prompt is not None:
            chat.add_user_message(args.prompt, images=images)
            await _reply(model, chat, config, interrupts)
            return EXIT_INTERRUPTED if interrupts.interrupted else 0
        interactive = sys.stdin.isatty()
        while True:
            if interactive:
                sys.stderr.write("> ")
                sys.stderr.flush()
            # A thread read can't be interrupted; abandoning it lets Ctrl-C end the command.
            line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line or line.strip() in _EXIT_WORDS:
                return 0
            if not line.strip():
                continue
            chat.add_user_message(line.rstrip("\n"), images=images)
            images = []  # the images go with the first message only
            result = await _reply(model, chat, config, interrupts)
            if interrupts.interrupted:
                return EXIT_INTERRUPTED
            chat.append(result)


async def _get_model(llm: Any, key: str | None) -> LLM:
    if key is None:
        model: LLM = await llm.model()
        return model
    bar: ProgressBar | None = None

    def on_progress(fraction: float) -> None:
        # Only called when the model actually has to be loaded.
        nonlocal bar
        if bar is None:
            bar = ProgressBar(f"Loading {key}", sys.stderr)
        bar.update(fraction)

    model = await llm.model(key, on_load_progress=on_progress)
    if bar is not None:
        bar.finish()
    return model


async def _reply(
    model: LLM, chat: Chat, config: dict[str, Any], interrupts: Interrupts
) -> PredictionResult:
    """Stream one reply; the first Ctrl-C asks LM Studio to stop and keeps the partial reply."""
    prediction = model.respond(chat, config=config)
    stop_requested = anyio.Event()
    out = sys.stdout
    async with anyio.create_task_group() as tg:

        async def stop_on_interrupt() -> None:
            await stop_requested.wait()
            await prediction.cancel()
            # The server answers a cancel with its final packet; if it never does, give up.
            await anyio.sleep(_CANCEL_GRACE_SECONDS)
            interrupts.abort()

        tg.start_soon(stop_on_interrupt)
        with interrupts.routed_to(stop_requested.set):
            async for fragment in prediction:
                if fragment.is_structural:
                    continue
                # Reasoning goes to stderr so stdout stays the answer alone (pipe-friendly).
                stream = out if fragment.reasoning_type == "none" else sys.stderr
                stream.write(fragment.content)
                stream.flush()
            result = await prediction.result()
        tg.cancel_scope.cancel()
    if result.content and not result.content.endswith("\n"):
        out.write("\n")
        out.flush()
    print(stats_line(result), file=sys.stderr, flush=True)
    return result


def stats_line(result: PredictionResult) -> str:
    """E.g. ``[qwen2.5-7b-instruct] 12 tokens, first token after 0.05 s, stop reason: eosFound``."""
    stats = result.stats
    tokens = "?" if stats.predicted_tokens_count is None else str(stats.predicted_tokens_count)
    first = (
        "n/a" if stats.time_to_first_token_sec is None else f"{stats.time_to_first_token_sec:.2f} s"
    )
    return (
        f"[{result.model_info.display_name}] {tokens} tokens, first token after {first}, "
        f"stop reason: {stats.stop_reason}"
    )

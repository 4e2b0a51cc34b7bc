"""``lmstudio-async chat``: the reply streams to stdout, a stats line to stderr."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

import anyio

from .._errors import LMStudioUsageError
from .._namespaces import LLM
from ..types.chat import Chat
from ..types.models import EmbeddingModelInfo
from ..types.prediction import PredictionResult
from ._connect import add_connection_arguments, connected_client
from ._images import read_images
from ._interrupts import EXIT_INTERRUPTED, Interrupts
from ._messages import PROG, CommandError
from ._numbers import non_negative_float, positive_int
from ._progress import ProgressBar
from ._reply import ReplyPrinter
from ._simulate import add_simulator_options, simulator_options
from ._stdin import read_line
from ._text import InputText

__all__ = ["add_chat_command"]

# After Ctrl-C asked LM Studio to stop, how long to wait for its final packet before giving up.
_CANCEL_GRACE_SECONDS = 3.0
_EXIT_WORDS = frozenset({"/exit", "/quit"})


def add_chat_command(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "chat",
        help="chat with a model (one prompt, or interactively)",
        description="Stream a model's reply to stdout; reasoning and a stats line go to stderr. "
        "Without a PROMPT, read one message per line from stdin until EOF (Ctrl-D) or /exit "
        "(multi-turn). Ctrl-C stops the reply; in multi-turn chat at a terminal it returns to "
        "the prompt, where a second Ctrl-C exits; with stdin from a pipe or file it also "
        "ends the program (status 130).",
    )
    parser.add_argument("prompt", nargs="?", metavar="PROMPT", help="the message to send")
    parser.add_argument(
        "--model", help="model key or identifier (loaded if needed; default: any loaded LLM)"
    )
    parser.add_argument("--system", help="system prompt")
    parser.add_argument(
        "--temperature", type=non_negative_float, help="sampling temperature (0 or more)"
    )
    parser.add_argument("--max-tokens", type=positive_int, help="stop after this many tokens")
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
    text: InputText = args.text
    config: dict[str, Any] = {}
    if args.temperature is not None:
        config["temperature"] = args.temperature
    if args.max_tokens is not None:
        config["max_tokens"] = args.max_tokens
    chat = Chat.empty()
    if args.system:
        chat.add_system_prompt(text(args.system))
    prompt = None if args.prompt is None else text(args.prompt)
    if prompt is not None and not prompt.strip():
        raise CommandError(
            "the message is empty. Give a PROMPT with some text, or none at all for a "
            "multi-turn chat.",
            usage=True,
        )
    if not args.simulate and (
        args.script is not None or args.tokens_per_second is not None or args.no_context_limit
    ):
        raise CommandError(
            "--script, --tokens-per-second and --no-context-limit need --simulate.", usage=True
        )
    simulator = simulator_options(args, f"{PROG} chat") if args.simulate else {}
    if simulator is None:
        return 2
    image_files = await read_images(args.images)
    async with connected_client(args, simulator=simulator) as client:
        # Uploaded before the model loads, so an image LM Studio refuses fails at once.
        images = [await client.files.prepare_image(data, name=name) for data, name in image_files]
        model = await _get_model(client, None if args.model is None else text(args.model))
        if prompt is not None:
            chat.add_user_message(prompt, images=images)
            await _reply(model, chat, config, interrupts)
            return EXIT_INTERRUPTED if interrupts.interrupted else 0
        interactive = sys.stdin.isatty()
        while True:
            if interactive:
                sys.stderr.write("> ")
                sys.stderr.flush()
            line = await read_line()
            if not line or line.strip() in _EXIT_WORDS:
                return 0
            message = text(line.rstrip("\n"))
            if not message.strip():
                continue
            chat.add_user_message(message, images=images)
            images = []  # the images go with the first message only
            result = await _reply(model, chat, config, interrupts)
            if interrupts.interrupted and not interactive:
                # Lines from a pipe or file are a script, not a person at a prompt: Ctrl-C
                # stops the reply and the program, as the next line would be read at once.
                return EXIT_INTERRUPTED
            # A reply stopped with Ctrl-C stays in the conversation as far as it got; the
            # next Ctrl-C (at the prompt) ends the session.
            interrupts.reset()
            chat.append(result)


async def _get_model(client: Any, key: str | None) -> LLM:
    llm = client.llm
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

    try:
        model = await llm.model(key, on_load_progress=on_progress)
    except LMStudioUsageError:
        downloaded = await client.system.list_downloaded_models()
        if any(isinstance(i, EmbeddingModelInfo) and i.model_key == key for i in downloaded):
            raise CommandError(
                f"{key} is an embedding model; chat needs an LLM (`{PROG} models` lists them)."
            ) from None
        raise
    if bar is not None:
        bar.finish()
    return model


async def _reply(
    model: LLM, chat: Chat, config: dict[str, Any], interrupts: Interrupts
) -> PredictionResult:
    """Stream one reply; the first Ctrl-C asks LM Studio to stop and keeps the partial reply."""
    prediction = model.respond(chat, config=config)
    stop_requested = anyio.Event()
    printer = ReplyPrinter(sys.stdout, sys.stderr)
    try:
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
                    printer.write(fragment)
                result = await prediction.result()
            tg.cancel_scope.cancel()
    finally:
        # Also when the reply failed half-way (a dropped connection): the error line that
        # follows must start on a line of its own, not at the end of the half-written reply.
        with contextlib.suppress(OSError):  # the output itself may be what failed
            printer.end()
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

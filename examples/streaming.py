"""Callbacks while a reply streams, and stopping it early with ``prediction.cancel()``.

    uv run python examples/streaming.py --simulate
    uv run python examples/streaming.py --simulate --stop-after 0   # let it finish

Cancelling asks LM Studio to stop generating: iteration ends normally and the result holds the
partial reply with stop reason ``userStopped``.
"""

from __future__ import annotations

import sys

from _common import connect, parser, run

import lmstudio_async as lms
from lmstudio_async.testing import ScriptedReply, Simulator

STORY = " ".join(f"Once upon a time, in chapter {n}, the model kept talking." for n in range(1, 40))


def script_long_story(sim: Simulator) -> None:
    # The simulator answers instantly unless paced; pace it like a real model.
    sim.script("qwen2.5-7b-instruct", ScriptedReply(content=STORY, tokens_per_second=200))


async def main(simulate: bool, model_key: str, stop_after: int) -> None:
    async with connect(simulate, prepare=script_long_story) as client:
        model = await client.llm.model(model_key)

        def on_progress(fraction: float) -> None:
            print(f"[prompt processed: {fraction:.0%}]", file=sys.stderr)

        def on_first_token() -> None:
            print("[first token]", file=sys.stderr)

        prediction = model.respond(
            "Tell me a very long story.",
            on_prompt_processing_progress=on_progress,
            on_first_token=on_first_token,
        )
        async for fragment in prediction:
            print(fragment.content, end="", flush=True)
            if stop_after and len(prediction.content) >= stop_after:
                await prediction.cancel()  # more fragments may still arrive; then it ends
        result: lms.PredictionResult = await prediction.result()
        print()
        print(
            f"[{len(result.content)} characters, stop reason: {result.stats.stop_reason}]",
            file=sys.stderr,
        )


if __name__ == "__main__":
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--model", default="qwen2.5-7b-instruct", help="model key")
    arguments.add_argument(
        "--stop-after",
        type=int,
        default=120,
        metavar="CHARS",
        help="cancel once this many characters arrived (0: never)",
    )
    args = arguments.parse_args()
    run(main(args.simulate, args.model, args.stop_after))

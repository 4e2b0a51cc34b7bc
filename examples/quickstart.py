"""Stream a reply from a chat, then print the prediction's stats.

uv run python examples/quickstart.py --simulate
"""

from __future__ import annotations

from _common import connect, parser, run

import lmstudio_async as lms


async def main(simulate: bool) -> None:
    async with connect(simulate) as client:
        model = await client.llm.model("qwen2.5-7b-instruct")
        chat = lms.Chat.from_history(
            [
                {"role": "system", "content": "You are a resident AI philosopher."},
                {"role": "user", "content": "What is the meaning of life?"},
            ]
        )
        prediction = model.respond(chat, config={"temperature": 0.6, "max_tokens": 50})
        async for fragment in prediction:
            print(fragment.content, end="", flush=True)
        print()
        result = await prediction.result()
        stats = result.stats
        print(
            f"{result.model_info.display_name}: {stats.predicted_tokens_count} tokens, "
            f"first token after {stats.time_to_first_token_sec or 0:.3f} s, "
            f"stop reason: {stats.stop_reason}"
        )


if __name__ == "__main__":
    args = parser(__doc__.splitlines()[0]).parse_args()
    run(main(args.simulate))

"""Structured output: get your own msgspec type back instead of text.

uv run python examples/structured_output.py --simulate   # bundled simulator
uv run python examples/structured_output.py              # LMSTUDIO_BASE_URL, else local
"""

from __future__ import annotations

import json
import os

import msgspec
from _common import connect, parser, run

import lmstudio_async as lms
from lmstudio_async.testing import ScriptedReply, Simulator

MODEL = os.environ.get("LMSTUDIO_MODEL", "qwen2.5-7b-instruct")


class Book(msgspec.Struct):
    title: str
    author: str
    year: int
    genres: list[str]


async def main(simulate: bool) -> None:
    async with connect(simulate, prepare=script) as client:
        model = await client.llm.model(MODEL)
        result = await model.respond(
            "Tell me about a classic science fiction novel.", response_format=Book
        )
        book = result.parsed  # a Book, validated by msgspec
        print(f"{book.title} by {book.author} ({book.year}); genres: {', '.join(book.genres)}")

        try:
            await model.respond("Now answer in prose.", response_format=Book)
        except lms.LMStudioStructuredOutputError as exc:
            print(f"Not a Book: {exc.content!r}")


def script(sim: Simulator) -> None:
    # What a real model might answer, so the example runs without LM Studio.
    book = {"title": "Dune", "author": "Frank Herbert", "year": 1965, "genres": ["sf", "epic"]}
    sim.script(
        MODEL,
        ScriptedReply(content=json.dumps(book)),
        ScriptedReply(content="Dune is a novel about a desert planet."),
    )


if __name__ == "__main__":
    args = parser(__doc__.splitlines()[0]).parse_args()
    run(main(args.simulate))

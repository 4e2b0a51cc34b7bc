"""Ask a vision model about an image: upload it once, then put it in a chat.

uv run python examples/vision.py --simulate
uv run python examples/vision.py --image photo.jpg "What is in this picture?"
"""

from __future__ import annotations

import struct
import zlib

from _common import connect, parser, run

import lmstudio_async as lms


def checkerboard_png() -> bytes:
    """A 2x2 black-and-white PNG, so the example runs without an image file at hand."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    rows = b"\x00\x00\xff" + b"\x00\xff\x00"  # each row: filter byte, then 8-bit grey pixels
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0)),
            chunk(b"IDAT", zlib.compress(rows)),
            chunk(b"IEND", b""),
        ]
    )


async def main(simulate: bool, image: str | None, question: str) -> None:
    async with connect(simulate) as client:
        # A path, bytes or a binary file object; the same content is uploaded only once.
        if image is None:
            handle = await client.files.prepare_image(checkerboard_png(), name="checkerboard.png")
        else:
            handle = await client.files.prepare_image(image)
        model = await client.llm.model("google/gemma-3-4b")
        chat = lms.Chat.empty()
        chat.add_user_message(question, images=[handle])
        async for fragment in model.respond(chat):
            print(fragment.content, end="", flush=True)
        print()


if __name__ == "__main__":
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--image", help="an image file (default: a generated checkerboard)")
    arguments.add_argument("question", nargs="?", default="What is in this picture?")
    args = arguments.parse_args()
    run(main(args.simulate, args.image, args.question))

"""``--image PATH``: checked and read by the CLI, so a bad path is refused in the flag's terms."""

from __future__ import annotations

from pathlib import Path

import anyio

from .._namespaces.files import MAX_IMAGE_BYTES, sniff_image_format
from ._messages import CommandError

__all__ = ["read_images"]

_FORMATS = "PNG, JPEG, WebP, GIF or BMP"


async def read_images(paths: list[str]) -> list[tuple[bytes, str]]:
    """Each ``--image`` file's bytes and base name, in order.

    Raises ``CommandError`` naming the flag and the path for a file that cannot be read, is
    larger than LM Studio takes (64 MiB), or is not one of the image formats it reads. Checked
    before connecting, so nothing is uploaded or loaded for a command that cannot run.
    """
    images = []
    for path in paths:
        file = anyio.Path(path)
        try:
            size = (await file.stat()).st_size
            if size > MAX_IMAGE_BYTES:
                raise CommandError(
                    f"--image {path}: {size:,} bytes is more than the {MAX_IMAGE_BYTES:,} bytes "
                    "LM Studio takes for an image. Scale it down first."
                )
            data = await file.read_bytes()
        except OSError as exc:
            raise CommandError(f"--image {path}: {exc.strerror or exc}.") from None
        if sniff_image_format(data) is None:
            raise CommandError(
                f"--image {path} is not an image LM Studio can read (it takes {_FORMATS}). "
                "Give the path of an image file."
            )
        images.append((data, Path(path).name))
    return images

"""Files uploaded to LM Studio for use in chats (images today).

A :class:`FileHandle` is what ``client.files.prepare_image()`` returns: LM Studio's name for a
temporary file that belongs to the client which uploaded it. Put it into a chat with
``chat.add_user_message(text, images=[handle])``; the chat carries it as a
:class:`~lmstudio_async.types.FilePart`.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["FileHandle", "FileType"]

FileType = Literal[
    "image", "text/plain", "application/pdf", "application/word", "text/other", "unknown"
]
"""The kind of an uploaded file, as LM Studio reports it."""


class FileHandle(msgspec.Struct, rename="camel", kw_only=True, frozen=True):
    """A file LM Studio holds for this client, e.g. an image for a vision model.

    * ``name``: the file name shown to the model and in LM Studio (e.g. ``"cat.png"``).
    * ``identifier``: LM Studio's identifier for the uploaded file (opaque).
    * ``size_bytes``: the size LM Studio measured, in bytes.
    * ``file_type``: what LM Studio took the file for (``"image"`` for images).

    The file lives as long as the client that uploaded it stays connected: LM Studio deletes a
    client's temporary files when its last socket closes, so a handle from one
    ``LMStudioClient`` is not valid in another.
    """

    name: str
    identifier: str
    size_bytes: int
    file_type: FileType

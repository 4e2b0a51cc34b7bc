"""The floor client's typed envelope (its own module so other clients never import msgspec)."""

from __future__ import annotations

import msgspec


class Fragment(msgspec.Struct):
    content: str


class Message(msgspec.Struct):
    type: str
    fragment: Fragment | None = None


class Envelope(msgspec.Struct, rename="camel"):
    type: str
    channel_id: int | None = None
    message: Message | None = None

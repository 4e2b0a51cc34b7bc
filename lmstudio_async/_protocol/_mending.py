"""Frames msgspec rejects for their text alone: invalid UTF-8 bytes and lone UTF-16 surrogates.

LM Studio is a JavaScript app: ``JSON.stringify`` writes a string holding half of a surrogate
pair as a ``"\\ud83d"`` escape, and a pair split across two fragments arrives as two such
halves. msgspec (rightly) refuses both, so these frames take a slower path here, off the hot
path: the stdlib ``json`` module keeps lone surrogates, invalid bytes become U+FFFD (what a
browser's ``TextDecoder`` does), and the parsed payload travels as :class:`Decoded` in place
of :class:`msgspec.Raw`. Lone surrogates survive only in fragment text, where the prediction
stream joins a split pair; everywhere else they become U+FFFD at once. Nothing here awaits.
"""

from __future__ import annotations

import json
from typing import Any, Final

import msgspec

from .envelope import IncomingEnvelope, decode_envelope

__all__ = [
    "Decoded",
    "Payload",
    "decode_lenient",
    "has_surrogates",
    "mend_text",
    "payload_value",
    "sanitized",
]

# Which envelope field holds the endpoint's payload (kept as Raw by the strict decoder).
_PAYLOAD_FIELDS: Final = {"channelSend": "message", "rpcResult": "result"}


class Decoded:
    """An endpoint payload already parsed by the lenient path (stands in for ``msgspec.Raw``)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Decoded({self.value!r:.80})"


Payload = msgspec.Raw | Decoded
"""A packet or RPC result as the receive loop hands it over."""


def decode_lenient(frame: str | bytes) -> IncomingEnvelope:
    """Decode a frame the strict decoder refused for its text; raises ``ValueError`` or
    :class:`msgspec.DecodeError` when it is not a usable envelope after all."""
    text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
    parsed = json.loads(text)
    if not isinstance(parsed, dict):
        raise ValueError("a frame must be a JSON object")
    kind = parsed.get("type")
    field = _PAYLOAD_FIELDS.get(kind) if isinstance(kind, str) else None
    payload = parsed.pop(field, None) if field is not None else None
    if field is not None:
        parsed[field] = None
    # Everything but the payload (ids, warning texts, error payloads) is final here.
    envelope = decode_envelope(json.dumps(sanitized(parsed)).encode())
    if field is not None:
        envelope = msgspec.structs.replace(envelope, **{field: Decoded(payload)})
    return envelope


def payload_value(payload: Payload) -> Any:
    """The parsed value of a payload the strict decoder refused (invalid UTF-8 → U+FFFD)."""
    if isinstance(payload, Decoded):
        return payload.value
    return json.loads(bytes(payload).decode("utf-8", "replace"))


def has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def mend_text(text: str) -> str:
    """Join surrogate halves that form a pair; any other lone half becomes U+FFFD."""
    if not has_surrogates(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def sanitized(value: Any, *, keep_fragment_text: bool = False) -> Any:
    """``value`` with every string mended; with ``keep_fragment_text`` a predict ``fragment``
    packet keeps its text as sent, for the stream to join halves split across fragments."""
    if isinstance(value, str):
        return mend_text(value)
    if isinstance(value, list):
        return [sanitized(item) for item in value]
    if not isinstance(value, dict):
        return value
    if keep_fragment_text and value.get("type") == "fragment":
        fragment = value.get("fragment")
        mended = {
            sanitized(key): sanitized(item) for key, item in value.items() if key != "fragment"
        }
        if isinstance(fragment, dict):
            content = fragment.get("content")
            mended["fragment"] = {**sanitized(fragment), "content": content}
        else:
            mended["fragment"] = fragment
        return mended
    return {sanitized(key): sanitized(item) for key, item in value.items()}

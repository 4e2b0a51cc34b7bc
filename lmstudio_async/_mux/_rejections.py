"""Rejected requests: LM Studio answers an invalid request with an id-less warning only.

PROTOCOL.md §6 item 3: an unknown endpoint or an invalid parameter gets a
``communicationWarning`` and nothing else, and each socket sends at most five warnings
(§2.8). The connection attributes a warning to the request it must be about; the names here
are the vocabulary it uses.
"""

from __future__ import annotations

import json
import re
from typing import Final

import msgspec

__all__ = [
    "creation_parameter",
    "BARRIER_PARAMETER",
    "ENDPOINT_IN_WARNING",
    "NO_PARAMETER",
    "REJECTING_KINDS",
    "WARNING_BUDGET",
    "echoed_parameter",
    "readable_warning",
    "same_json",
    "sent_parameter",
    "warning_kind",
]

# Warnings with these kinds mean "your request was dropped and will never be answered"
# (PROTOCOL.md §6 item 3); the request they name is failed instead of hanging.
REJECTING_KINDS: Final = frozenset(
    {
        "rpcEndpointUnknown",
        "rpcEndpointUnhandled",
        "rpcParameterTypeError",
        "channelEndpointUnknown",
        "channelEndpointUnhandled",
        "channelCreationParameterTypeError",
    }
)
# LM Studio sends at most this many warnings per socket, then goes silent (PROTOCOL.md §2.8).
WARNING_BUDGET: Final = 5
# An RPC that is valid everywhere channels are, with a tiny answer: its result proves that the
# server processed every frame sent before it, so any warning about them has arrived.
BARRIER_PARAMETER: Final = {
    "specifier": {"type": "query", "query": {"identifier": "lmstudio-async-order-barrier"}},
    "throwIfNotFound": False,
}

# LM Studio builds before 2026-03 (lmstudio-js 480f61ea) send warnings without a `kind`; their
# wording, unchanged since, says which kind it is.
_KIND_BY_WORDING: Final = (
    ("Received channelCreate for unknown endpoint", "channelEndpointUnknown"),
    ("Received channelCreate for unhandled endpoint", "channelEndpointUnhandled"),
    ("Received channelCreate for already open channel", "channelAlreadyOpen"),
    ("Received invalid creationParameter for channel", "channelCreationParameterTypeError"),
    ("Received channelSend for unknown channel", "channelUnknown"),
    ("Received channelAck for unknown channel", "channelUnknown"),
    ("Received invalid message for channel", "channelMessageTypeError"),
    ("Received rpcCall for unknown endpoint", "rpcEndpointUnknown"),
    ("Received rpcCall for unhandled endpoint", "rpcEndpointUnhandled"),
    ("Received invalid parameter for rpcCall", "rpcParameterTypeError"),
)


def warning_kind(kind: str | None, warning: str) -> str:
    """The warning's ``kind``, read from its wording when an older LM Studio sent none
    (``"unknown"`` if neither says)."""
    if kind:
        return kind
    for wording, inferred in _KIND_BY_WORDING:
        if warning.startswith(wording):
            return inferred
    return "unknown"


ENDPOINT_IN_WARNING: Final = re.compile(r"endpoint(?:Name)?\s*[=:]\s*\"?([A-Za-z0-9_]+)")

# LM Studio quotes the refused parameter in its warning: "..., endpointName = predict,
# creationParameter = <JSON.stringify of it>. Zod error: ..." ("parameter = " for an RPC). That
# quote is what tells apart requests sent together, which no order barrier can.
_PARAMETER_IN_WARNING: Final = re.compile(r"\b(?:creationParameter|parameter) = ")
_JSON_PREFIX: Final = json.JSONDecoder()


class _NoParameter:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_PARAMETER"


NO_PARAMETER: Final = _NoParameter()
"""What :func:`echoed_parameter` and :func:`sent_parameter` give when there is nothing to
compare: a warning without a quote names no request."""


def echoed_parameter(warning: str) -> object:
    """The parameter a parameter-type warning quotes, as JSON values, or :data:`NO_PARAMETER`.

    Older builds, a quote that is not JSON (``undefined``) or one cut short give
    :data:`NO_PARAMETER`: the caller then cannot tell which request was refused.
    """
    marker = _PARAMETER_IN_WARNING.search(warning)
    if marker is None:
        return NO_PARAMETER
    try:
        value, _end = _JSON_PREFIX.raw_decode(warning, marker.end())
    except (ValueError, RecursionError):
        return NO_PARAMETER
    return value


_LONGEST_WARNING: Final = 1000


def readable_warning(warning: str) -> str:
    """A warning as a person reads it: the quoted parameter (a whole chat, images included,
    so possibly megabytes) shortened to ``{...}``, and at most 1000 characters in all."""
    marker = _PARAMETER_IN_WARNING.search(warning)
    if marker is not None:
        try:
            value, end = _JSON_PREFIX.raw_decode(warning, marker.end())
        except (ValueError, RecursionError):
            pass
        else:
            if isinstance(value, (dict, list)):
                short = "{...}" if isinstance(value, dict) else "[...]"
                warning = warning[: marker.end()] + short + warning[end:]
    warning = " ".join(warning.split())
    if len(warning) > _LONGEST_WARNING:
        warning = warning[: _LONGEST_WARNING - 3] + "..."
    return warning


def same_json(a: object, b: object) -> bool:
    """Whether two decoded JSON values are the same JSON value as JavaScript reads them:
    numbers as doubles (``1`` is ``1.0``; ``2**53 + 1`` is ``2**53``), but ``true`` is not ``1``;
    key order ignored."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        # JavaScript numbers are doubles: an integer beyond 2**53 comes back rounded.
        if a == b:
            return True
        try:
            return float(a) == float(b)
        except OverflowError:  # beyond any double: JavaScript could not have sent it
            return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same_json, a, b))
    return type(a) is type(b) and a == b


def sent_parameter(frame: bytes) -> object:
    """The parameter of a ``channelCreate`` or ``rpcCall`` frame this client sent, as JSON
    values comparable with :func:`echoed_parameter` (``1 == 1.0``, key order ignored)."""
    envelope = msgspec.json.decode(frame)
    if "creationParameter" in envelope:
        return envelope["creationParameter"]
    return envelope.get("parameter", NO_PARAMETER)


class _ChannelCreateFrame(msgspec.Struct, rename="camel"):
    creation_parameter: msgspec.Raw = msgspec.Raw()


def creation_parameter(frame: bytes) -> msgspec.Raw | None:
    """The ``creationParameter`` of a ``channelCreate`` frame this client sent, verbatim (to
    send again in a new frame), or ``None`` if it has none."""
    raw = msgspec.json.decode(frame, type=_ChannelCreateFrame).creation_parameter
    return raw if len(raw) else None

"""Rejected requests: LM Studio answers an invalid request with an id-less warning only.

PROTOCOL.md §6 item 3: an unknown endpoint or an invalid parameter gets a
``communicationWarning`` and nothing else, and each socket sends at most five warnings
(§2.8). The connection attributes a warning to the request it must be about; the names here
are the vocabulary it uses.
"""

from __future__ import annotations

import re
from typing import Final

from .._errors import LMStudioProtocolError

__all__ = [
    "BARRIER_PARAMETER",
    "ENDPOINT_IN_WARNING",
    "REJECTING_KINDS",
    "WARNING_BUDGET",
    "EndpointRejected",
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

ENDPOINT_IN_WARNING: Final = re.compile(r"endpoint(?:Name)?\s*[=:]\s*\"?([A-Za-z0-9_]+)")


class EndpointRejected(LMStudioProtocolError):
    """The server refused a request outright (unknown endpoint or invalid parameter)."""

    def __init__(self, message: str, *, kind: str, endpoint: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.endpoint = endpoint

    @property
    def endpoint_unknown(self) -> bool:
        return self.kind.endswith(("EndpointUnknown", "EndpointUnhandled"))

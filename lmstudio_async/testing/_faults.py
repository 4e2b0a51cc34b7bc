"""Fault injection settings for the simulator.

Faults are plain data: the prediction and connection code asks "should I misbehave now?" and
acts on the answer. Counts refer to fragments already sent on the prediction, so ``0`` means
"before the first fragment".
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Faults"]


@dataclass
class Faults:
    """Ways the simulated server can misbehave; every field defaults to "behave".

    Assign a new instance to :attr:`Simulator.faults` (server-wide) or pass one in
    :class:`ScriptedReply` (one prediction). The per-prediction instance replaces the
    server-wide one entirely for that prediction.
    """

    delay_before_first_fragment: float = 0.0
    """Seconds to wait after prompt processing before the first fragment."""
    stall_after_fragments: int | None = None
    """Stop after N fragments and wait for ``cancel`` (then finish with ``userStopped``)."""
    drop_after_fragments: int | None = None
    """Abruptly close the socket after N fragments."""
    channel_error_after_fragments: int | None = None
    """End the prediction with ``channelError`` after N fragments."""
    malformed_json_after_fragments: int | None = None
    """Send one text frame that is not JSON after N fragments, then continue."""
    unknown_packet_after_fragments: int | None = None
    """Send a channel packet with an unknown ``type`` after N fragments, then continue."""
    unknown_channel_after_fragments: int | None = None
    """Send a ``channelSend`` for a channel id the client never opened, then continue."""
    unknown_envelope_after_fragments: int | None = None
    """Send an envelope with an unknown top-level ``type``, then continue."""
    stall_auth: bool = False
    """Never answer the authentication packet."""
    drop_on_auth: bool = False
    """Close the socket as soon as the authentication packet arrives."""
    rpc_delay: float = 0.0
    """Seconds to delay every ``rpcResult``/``rpcError``."""
    stall_rpcs: bool = False
    """Never answer RPCs."""

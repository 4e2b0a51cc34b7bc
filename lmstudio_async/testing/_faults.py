"""Fault injection settings for the simulator.

Faults are plain data: the prediction and connection code asks "should I misbehave now?" and
acts on the answer. Counts refer to fragments already sent on the prediction, so ``0`` means
"before the first fragment".
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["EndpointFault", "Faults"]

_log = logging.getLogger("lmstudio_async.testing")


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
    ignore_cancel: bool = False
    """Never acknowledge ``cancel``: once one arrives the prediction goes silent (no more
    fragments, no ``success``, no ``channelClose``) until the socket closes."""
    load_failure_at_progress: float | None = None
    """A fraction from 0 to 1: model loads report progress (in quarters) up to it, report
    exactly this fraction, then fail with ``load_error``; ``0`` fails before any progress and
    ``1.0`` after reporting full progress."""
    load_error: dict[str, Any] | None = None
    """The serialized LM Studio error a failing load ends with (a generic one if ``None``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        # Checked when set (in the constructor or later, as `sim.faults.rpc_delay = ...`), not
        # where used: a bad value would otherwise surface as a hang (an infinite delay) or a
        # crash deep inside a connection, far from the test that set it.
        _check_fault(name, value)
        super().__setattr__(name, value)


def _check_fault(name: str, value: object) -> None:
    if value is None or name in _FLAGS:
        return
    if name == "load_error":
        if not isinstance(value, dict) or not isinstance(value.get("title"), str):
            raise ValueError(
                "Faults.load_error must be a serialized LM Studio error with a 'title' "
                "(build one with lmstudio_error(...))"
            )
    elif name.endswith("_fragments"):
        _check_count(f"Faults.{name}", value)
    elif name == "load_failure_at_progress":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(
                f"Faults.load_failure_at_progress must be a fraction from 0 to 1 "
                f"(0.5 = fail halfway), not {value!r}"
            )
    else:
        check_seconds(f"Faults.{name}", value)


_FLAGS = {"stall_auth", "drop_on_auth", "stall_rpcs", "ignore_cancel"}


def check_seconds(name: str, value: object) -> None:
    """``ValueError`` unless ``value`` is a finite, non-negative number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds, not {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number of seconds, 0 or more, not {value!r}")


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"{name} must be a whole number of fragments, 0 or more (None: never), not {value!r}"
        )


@dataclass(kw_only=True, eq=False)
class EndpointFault:
    """Misbehaviour aimed at one RPC or channel endpoint; see :meth:`Simulator.fault_endpoint`.

    ``endpoint`` is the wire name (``"getModelInfo"``, ``"predict"``...), ``namespace`` limits
    it to one namespace (``"llm"``, ``"system"``...; ``None``: any). For RPCs: ``error`` answers
    with that serialized error (``rpcError``) instead of running the call; ``raw_result`` answers
    ``rpcResult`` with these bytes verbatim as the ``result`` JSON value (so it may hold lone
    ``\\ud83d`` escapes or invalid UTF-8); ``delay`` holds the answer back that many seconds.
    For channels: ``error`` ends the channel with that ``channelError`` right after
    ``channelCreate``; ``reject=True`` answers ``channelCreate`` with only a
    ``channelCreationParameterTypeError`` warning (within the connection's five-warning
    budget), as LM Studio does for a bad creation parameter; on an RPC, with only an
    ``rpcParameterTypeError`` warning. ``when``, if given, picks the calls it hits: it receives
    a copy of the request's ``creationParameter`` (channels) or ``parameter`` (RPCs) as decoded
    JSON (dicts, lists, str...; ``None`` if absent) and returns whether to misbehave. ``times``
    bounds how many calls it hits (``None``: every call); ``used`` counts them.
    """

    endpoint: str
    namespace: str | None = None
    error: dict[str, Any] | None = None
    raw_result: bytes | None = None
    delay: float = 0.0
    reject: bool = False
    times: int | None = None
    when: Callable[[Any], bool] | None = None
    used: int = 0

    def take(self, namespace: str, endpoint: str, parameter: Any = None) -> bool:
        """Whether this fault hits a call of ``endpoint`` on ``namespace`` with ``parameter``
        (and count it)."""
        if endpoint != self.endpoint or self.namespace not in (None, namespace):
            return False
        if self.times is not None and self.used >= self.times:
            return False
        if self.when is not None and not self._wanted(parameter):
            return False
        self.used += 1
        return True

    def _wanted(self, parameter: Any) -> bool:
        assert self.when is not None
        try:
            # A copy: what the predicate does to it must not change what the simulator runs.
            wanted = self.when(copy.deepcopy(parameter))
        except Exception:
            # A test's own predicate failing must not take the simulated connection down.
            _log.exception("EndpointFault.when raised for %r; the call is not hit", self.endpoint)
            return False
        if inspect.isawaitable(wanted):
            close = getattr(wanted, "close", None)
            if close is not None:
                close()  # a coroutine never awaited would warn later, far from the cause
            _log.error(
                "EndpointFault.when for %r returned an awaitable; it must answer at once "
                "(a plain function returning True or False). The call is not hit.",
                self.endpoint,
            )
            return False
        return bool(wanted)

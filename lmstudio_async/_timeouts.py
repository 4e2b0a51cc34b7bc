"""Deadlines: the client-wide :class:`Timeouts` and the per-call ``timeout=`` scope.

A deadline that passes raises :class:`LMStudioTimeoutError` (also a ``TimeoutError``) and
whatever was running in LM Studio for it is cancelled: an RPC's late answer is ignored, a
channel (prediction, model load) is sent ``cancel`` and released.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

import anyio

from ._errors import LMStudioTimeoutError, LMStudioUsageError

__all__ = ["Timeouts", "check_timeout", "explicit_deadline_active", "operation_timeout"]


@dataclass(frozen=True, kw_only=True)
class Timeouts:
    """Per-phase deadlines in seconds for ``LMStudioClient(timeouts=...)``; ``None`` = no limit.

    The defaults only fire on a server that is gone or wedged, never on a healthy but slow
    local model:

    * ``connect`` (10 s): opening the websocket. A local LM Studio accepts in milliseconds; a
      remote one that takes 10 s to accept a TCP connection is unreachable in practice.
    * ``auth`` (10 s): the authentication handshake after the socket opened (the app answers
      it before doing anything else, without touching any model).
    * ``rpc`` (60 s): one request/response call (``list_loaded``, ``version``, ``embed``,
      ``tokenize``, ...). None of them waits for generation; the slowest healthy ones (an
      embedding of a long text on a CPU) take seconds.
    * ``first_fragment`` (``None``): from the start of a prediction to its first fragment.
      This includes prompt processing and any just-in-time model load, which for a long
      context on a CPU can legitimately take many minutes, so no default limit.
    * ``between_fragments`` (``None``): the longest silence between two packets of a running
      prediction. LM Studio may hold back a tool call until the model finished writing it,
      which at a few tokens per second can take minutes for a large argument, so no default
      limit. Set it (e.g. 30 s) when your models and prompts make a stall unambiguous.

    * ``heartbeat`` (30 s): after this much silence on a socket the client pings LM Studio; no
      pong within half of it means the peer vanished without closing the socket (a laptop
      that slept, a dropped network), so every operation on it fails and the next call
      reconnects. LM Studio answers pings by itself, even while it is busy generating.

    Model loads (``client.llm.model(key)``, ``load()``) have no default deadline: a large model
    from a slow disk takes minutes. Every method that talks to LM Studio also takes
    ``timeout=`` for a deadline on that one call.
    """

    connect: float | None = 10.0
    auth: float | None = 10.0
    rpc: float | None = 60.0
    first_fragment: float | None = None
    between_fragments: float | None = None
    heartbeat: float | None = 30.0

    def __post_init__(self) -> None:
        names = ("connect", "auth", "rpc", "first_fragment", "between_fragments", "heartbeat")
        for name in names:
            check_timeout(getattr(self, name), f"Timeouts.{name}")


def check_timeout(value: object, what: str) -> float | None:
    """``value`` as a deadline in seconds (``None`` = no limit), else a clear usage error."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or value <= 0
    ):
        raise LMStudioUsageError(
            f"{what} must be a positive number of seconds or None (no limit), got {value!r}."
        )
    return float(value)


DEFAULT_TIMEOUTS: Final = Timeouts()

# Set while a caller's own ``timeout=`` governs the operation, so the client-wide RPC default
# doesn't cut a call short that the caller explicitly allowed more time.
_explicit_deadline: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "lmstudio_async_explicit_deadline", default=False
)


def explicit_deadline_active() -> bool:
    return _explicit_deadline.get()


@contextlib.asynccontextmanager
async def operation_timeout(limit: float | None, what: str) -> AsyncIterator[None]:
    """Run the body under the caller's ``timeout=``; raise LMStudioTimeoutError when it passes.

    The body is cancelled at the deadline, and every layer below releases what it holds on
    cancellation (an RPC forgets its call id, a channel is abandoned, which sends ``cancel``).
    """
    seconds = check_timeout(limit, "timeout")
    if seconds is None:
        yield
        return
    token = _explicit_deadline.set(True)
    try:
        with anyio.move_on_after(seconds) as scope:
            yield
    finally:
        _explicit_deadline.reset(token)
    if scope.cancelled_caught:
        raise LMStudioTimeoutError(
            f"{what} did not finish within {seconds:g} s (timeout=); it was cancelled in LM Studio."
        )

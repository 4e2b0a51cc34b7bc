"""Firehose mode: stream fragments as fast as the socket takes them (for benchmarks).

With ``Simulator(firehose=True)`` an unscripted, fault-free prediction replies with ``N``
identical fragments, ``N`` being the request's ``maxPredictedTokens`` (``max_tokens`` on the
OpenAI-compatible endpoint) or :data:`DEFAULT_FRAGMENTS`. Each fragment's content is a space
followed by the *tag*: the last user message's text (at most 64 characters), so a client
running many predictions at once can check that every fragment reached the prediction it
belongs to.

The websocket packets are exactly those of the normal mode (two ``promptProcessingProgress``,
N ``fragment``, ``success``, ``channelClose``); only the way fragments are written differs.
The fragment envelope is encoded once per prediction, framed once as an unmasked websocket
text frame, and written ``_BATCH`` frames at a time with one ``transport.write`` of the
concatenated bytes. That reaches past aiohttp's public API (``ws._writer.transport``) on
purpose: per-frame ``send_frame`` calls cost more than a fast client spends reading them.
Each prediction still does the simulator's full per-prediction work, which with a thousand
short predictions at once costs more than a fast client does: ``benchmarks/`` measures
websocket clients against a server of its own (``benchmarks/_firehose_server.py``).
Batches are written under the connection's send lock, so frames of concurrent channels never
interleave mid-frame, and the writer waits for the transport's buffer to drain between
batches (normal flow control).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from . import _envelope as env
from ._models import _message_text

if TYPE_CHECKING:
    from ._connection import Connection
    from ._llm import _Prediction

__all__ = ["DEFAULT_FRAGMENTS", "fragment_count", "fragment_tag", "stream", "ws_text_frame"]

DEFAULT_FRAGMENTS = 100
"""Fragments per prediction when the request sets no token limit."""

_BATCH = 512  # frames per transport.write: ~60 KB for a short tag
_HIGH_WATER = 1 << 20  # wait for the socket to drain above this many buffered bytes
_MAX_TAG = 64


def ws_text_frame(payload: bytes) -> bytes:
    """One complete, unmasked (server-to-client) websocket text frame carrying ``payload``."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


def fragment_tag(messages: Any) -> str:
    """The text every firehose fragment repeats: the last user message (trimmed), or ``tok``."""
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, Mapping) and message.get("role") == "user":
                text = " ".join(_message_text(message).split())[:_MAX_TAG]
                if text:
                    return text
    return "tok"


def fragment_count(limit: Any) -> int:
    """``N`` from a ``maxPredictedTokens`` config value (``{"checked", "value"}``) or an int."""
    if isinstance(limit, Mapping):
        if limit.get("checked") and isinstance(limit.get("value"), int):
            return max(0, int(limit["value"]))
        return DEFAULT_FRAGMENTS
    if isinstance(limit, int) and not isinstance(limit, bool):
        return max(0, limit)
    return DEFAULT_FRAGMENTS


async def write_repeated(conn: Connection, frame: bytes, count: int, stop: anyio.Event) -> int:
    """Write ``frame`` ``count`` times in large batches; stop early once ``stop`` is set.

    Returns how many frames were written. A dead socket cancels the connection like
    :meth:`Connection.send` does.
    """
    writer = conn.ws._writer
    if writer is None:
        raise RuntimeError("firehose: websocket is not prepared")
    transport = writer.transport
    protocol = writer.protocol
    chunk = frame * _BATCH
    written = 0
    while written < count and not stop.is_set():
        n = min(_BATCH, count - written)
        async with conn._lock:
            if transport.is_closing():
                conn.close_now()
                await anyio.lowlevel.checkpoint()
                raise ConnectionResetError("firehose: socket closed")
            transport.write(chunk if n == _BATCH else frame * n)
        written += n
        if transport.get_write_buffer_size() > _HIGH_WATER and protocol._paused:
            await protocol._drain_helper()
        else:
            # Let other channels' batches and incoming cancels interleave.
            await anyio.lowlevel.checkpoint()
    return written


async def stream(pred: _Prediction, history: Mapping[str, Any] | None, prompt_tokens: int) -> None:
    """Stream one firehose prediction on ``pred``'s channel, then its ``success`` packet."""
    from ._llm import _Fragment, _Plan  # import cycle: _llm hooks this module in

    ctx, record = pred.ctx, pred.record
    started = time.monotonic()
    await pred.send_prompt_progress(prompt_tokens)
    limit = pred.config.get("llm.prediction.maxPredictedTokens")
    count = fragment_count(limit)
    fragment = _Fragment(" " + fragment_tag((history or {}).get("messages")))
    packet = fragment.packet()
    frame = env.channel_send(ctx.channel_id, packet)
    pred.first_token_at = time.monotonic()
    sent = await write_repeated(ctx.conn, ws_text_frame(frame), count, ctx.cancel_requested)
    pred.tokens = sent
    record.fragments_sent += sent
    record.content += fragment.content * sent
    recorded = ctx.conn._record
    if recorded is not None:
        decoded = env.decode(frame)
        recorded.extend(("sent", ctx.conn.namespace_name, decoded) for _ in range(sent))
    stopped = sent < count
    limited = isinstance(limit, Mapping) and bool(limit.get("checked"))
    plan = _Plan([], stop_reason="maxPredictedTokensReached" if limited else "eosFound")
    stop_reason = "userStopped" if stopped else plan.stop_reason
    await ctx.send(pred._success(plan, stop_reason, started, prompt_tokens, None))
    record.status = "cancelled" if stopped else "finished"

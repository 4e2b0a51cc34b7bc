from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from .._loops import call_in_loop
from .._protocol.envelope import encode_cancel, encode_channel_send
from .._protocol.packets import FragmentPacket

if TYPE_CHECKING:
    from .._timeouts import Timeouts
    from ._connection import Connection

__all__ = ["Channel", "ChannelClosed", "Packet"]

Packet = msgspec.Raw | FragmentPacket
"""A buffered packet: raw, for the consumer's own decoder, or a fragment the receive loop
decoded together with its envelope (only on channels with ``takes_fragments``)."""

logger = logging.getLogger("lmstudio_async")


class ChannelClosed(Exception):
    """The server closed the channel normally (``channelClose``); no more packets will come."""


# Marks a normal close in ``_end``; a fresh ChannelClosed is raised each time so that no
# traceback accumulates on a shared instance.
_CLOSED = ChannelClosed()


class Channel:
    """The client end of one channel: a buffer of raw packets that the receive loop fills.

    The receive loop never waits for a consumer (``_feed`` only appends), so a slow reader of one
    channel cannot hold up the others on the socket. A consumer that finds packets buffered gets
    them without a task switch.
    """

    __slots__ = (
        "_buffer",
        "_cancel_sent",
        "_connection",
        "_discarding",
        "_end",
        "_head",
        "_slot_release",
        "_waiter",
        "endpoint",
        "id",
        "packets_received",
        "resend_parameter",
        "takes_fragments",
    )

    def __init__(self, connection: Connection, channel_id: int, endpoint: str) -> None:
        self._connection = connection
        self.id = channel_id
        self.endpoint = endpoint
        # A list read from ``_head`` rather than a deque: an idle deque costs ~600 bytes, and
        # thousands of predictions may sit waiting at once.
        self._buffer: list[Packet] = []
        self._head = 0
        self._waiter: asyncio.Future[None] | None = None
        self._end: BaseException | None = None
        self._cancel_sent = False
        self._discarding = False
        # Set for predictions under ``max_concurrent_predictions``: frees the slot once.
        self._slot_release: Callable[[], None] | None = None
        self.packets_received = 0
        # Set for prediction channels: the receive loop may buffer a decoded FragmentPacket.
        self.takes_fragments = False
        # Set when the connection withdrew this request before LM Studio said anything about
        # it (its socket ran out of warnings): the creation parameter, to send it again.
        self.resend_parameter: msgspec.Raw | None = None

    def __repr__(self) -> str:
        state = "open" if self._end is None else type(self._end).__name__
        buffered = len(self._buffer) - self._head
        return f"<Channel {self.endpoint}#{self.id} {state} buffered={buffered}>"

    # -- receive-loop side: synchronous, never blocks ------------------------------------------

    def _feed(self, packet: Packet) -> None:
        self.packets_received += 1
        if self._discarding:
            return
        self._buffer.append(packet)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _finish(self, end: BaseException | None) -> None:
        """The channel ended: ``None`` for a normal close, else the error to raise."""
        if self._end is not None:
            return
        self._end = end if end is not None else _CLOSED
        if self._cancel_sent and end is None:  # LM Studio answers a cancel by closing
            logger.debug(
                "%s: channel %d (%s) cancel acknowledged",
                self._connection.namespace,
                self.id,
                self.endpoint,
            )
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._slot_release is not None:
            self._free_slot()

    def _free_slot(self) -> None:
        release, self._slot_release = self._slot_release, None
        if release is not None:
            release()

    # -- consumer side --------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self._end is not None

    @property
    def timeouts(self) -> Timeouts:
        """The client's deadlines (the prediction phases read theirs from here)."""
        return self._connection.timeouts

    def next_nowait(self) -> Packet | None:
        """The next buffered packet, or ``None`` when none is buffered (check :attr:`ended`)."""
        buffer, head = self._buffer, self._head
        if head == len(buffer):
            return None
        packet = buffer[head]
        head += 1
        if head == len(buffer):
            buffer.clear()
            head = 0
        elif head >= 1024:
            # A consumer far behind its producer: drop what it already read now and then.
            del buffer[:head]
            head = 0
        self._head = head
        return packet

    def wait(self) -> asyncio.Future[None]:
        """A future that completes when a packet or the end arrives.

        For a consumer that found nothing buffered: it raises the end (:class:`ChannelClosed`
        or the channel's error) right away if there is one, else it awaits this future directly
        (no coroutine frame per waiting channel) and then calls :meth:`next_nowait` again.
        """
        if self._end is not None:
            raise ChannelClosed() if self._end is _CLOSED else self._end
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        return waiter

    async def next(self) -> Packet:
        """The next packet. Raises :class:`ChannelClosed` or the channel's error at the end."""
        while True:
            packet = self.next_nowait()
            if packet is not None:
                return packet
            await self.wait()

    def send(self, message: Any) -> None:
        """Queue a packet to the server side of this channel (no-op once the channel ended)."""
        if self._end is None:
            self._connection.enqueue(encode_channel_send(self.id, message))

    def cancel(self) -> None:
        """Ask the server to stop, once; never after the channel ended. Packets keep flowing."""
        if self._end is None and not self._cancel_sent:
            self._cancel_sent = True
            logger.debug(
                "%s: channel %d (%s) cancel sent",
                self._connection.namespace,
                self.id,
                self.endpoint,
            )
            self._connection.enqueue(encode_cancel(self.id))
            # Every cancel is bounded: a server that never confirms it must not keep this
            # channel (and its concurrency slot) forever, nor its reader waiting.
            self._connection.cancel_sent(self)

    def abandon(self) -> None:
        """Nobody will read this channel again: cancel server-side and drop what still arrives.

        Safe to call from finalizers and cancellation handlers: it only queues a frame.
        """
        if self._discarding:
            return
        self._discarding = True
        self._buffer.clear()
        self._head = 0
        # The slot and the registration stay until LM Studio ends the channel (the limit
        # bounds predictions running there), within the grace cancel() starts.
        self.cancel()

    def abandon_threadsafe(self) -> None:
        """:meth:`abandon` from a finalizer, which may run on any thread or after the loop."""
        loop = self._connection.loop
        if loop is not None:
            call_in_loop(loop, self.abandon)

from __future__ import annotations

from typing import Protocol

__all__ = ["Transport", "TransportClosed"]


class TransportClosed(Exception):
    """The frame pipe is closed; ``reason`` says why, for the error shown to the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Transport(Protocol):
    """A bidirectional pipe of complete text frames."""

    async def send(self, frame: bytes) -> None:
        """Send one UTF-8 JSON text frame. Raises :class:`TransportClosed`."""

    async def receive(self) -> str | bytes:
        """Wait for the next text frame. Raises :class:`TransportClosed` at the end."""

    async def aclose(self) -> None:
        """Close the pipe; idempotent, never raises."""

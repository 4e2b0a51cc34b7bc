"""Ctrl-C routing: the first one stops the running prediction politely, the next one aborts."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator

import anyio

__all__ = ["EXIT_INTERRUPTED", "Interrupts"]

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C'd program


class Interrupts:
    """Receives SIGINT inside the event loop instead of as ``KeyboardInterrupt``.

    A ``KeyboardInterrupt`` can land between any two bytecodes, even inside the SDK's cleanup;
    handling the signal as an event-loop callback lets a command react at a well-defined point.
    While a handler is routed (``routed_to``), the first Ctrl-C calls it (the chat command asks
    LM Studio to stop the prediction and waits for its final stats). Any other Ctrl-C cancels the
    whole command.
    """

    def __init__(self, scope: anyio.CancelScope) -> None:
        self._scope = scope
        self._handler: Callable[[], None] | None = None
        self.count = 0

    def __repr__(self) -> str:
        return f"<Interrupts count={self.count}>"

    @property
    def interrupted(self) -> bool:
        """True once Ctrl-C was pressed."""
        return self.count > 0

    def fire(self) -> None:
        """What SIGINT does (also callable directly)."""
        self.count += 1
        handler, self._handler = self._handler, None
        if handler is not None and self.count == 1:
            handler()
        else:
            self.abort()

    def reset(self) -> None:
        """Forget earlier Ctrl-Cs: the next one is a first one again (multi-turn chat)."""
        self.count = 0

    def abort(self) -> None:
        """Cancel the whole command."""
        self._scope.cancel()

    @contextlib.contextmanager
    def routed_to(self, handler: Callable[[], None]) -> Iterator[None]:
        """Send the first Ctrl-C to ``handler`` while the block runs."""
        self._handler = handler
        try:
            yield
        finally:
            self._handler = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGINT in the running loop for the duration of the block."""
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGINT, self.fire)
        except (NotImplementedError, RuntimeError, ValueError):
            # Windows event loops, or not the main thread: Ctrl-C stays a KeyboardInterrupt,
            # which main() turns into exit code 130.
            yield
            return
        try:
            yield
        finally:
            loop.remove_signal_handler(signal.SIGINT)

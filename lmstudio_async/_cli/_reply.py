"""How a streamed reply appears: the answer on stdout, reasoning on stderr and set apart."""

from __future__ import annotations

import os
from typing import TextIO

from ..types.prediction import PredictionFragment

__all__ = ["ReplyPrinter"]

_DIM = "\x1b[2m"
_RESET = "\x1b[0m"


class ReplyPrinter:
    """Writes fragments as they stream, and keeps the two streams from running into each other.

    Reasoning goes to stderr so stdout stays the answer alone (pipe-friendly); on a colour
    terminal it is dimmed. Whenever output moves from one stream to the other, or ends, an
    unfinished line is ended first, so reasoning, answer and the stats line each start on a
    line of their own, also when stderr is a file.
    """

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self._out = out
        self._err = err
        self._dim = (
            err.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
        )
        self._open_line: TextIO | None = None

    def __repr__(self) -> str:
        return f"<ReplyPrinter dim={self._dim}>"

    def write(self, fragment: PredictionFragment) -> None:
        """Show one fragment (structural ones, e.g. tool-call markup, are not shown)."""
        if fragment.is_structural or not fragment.content:
            return
        reasoning = fragment.reasoning_type != "none"
        stream = self._err if reasoning else self._out
        self._end_line_unless(stream)
        # Each write resets the colour itself, so an interrupted reply leaves the terminal sane.
        stream.write(
            f"{_DIM}{fragment.content}{_RESET}" if reasoning and self._dim else fragment.content
        )
        stream.flush()
        self._open_line = None if fragment.content.endswith("\n") else stream

    def end(self) -> None:
        """End the unfinished line, if any (call before printing anything else)."""
        self._end_line_unless(None)

    def _end_line_unless(self, stream: TextIO | None) -> None:
        if self._open_line is not None and self._open_line is not stream:
            self._open_line.write("\n")
            self._open_line.flush()
            self._open_line = None

"""A standard-library progress bar for stderr: redrawn in place on a terminal, stepped otherwise."""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["ProgressBar"]

_WIDTH = 30


class ProgressBar:
    """Shows a fraction from 0.0 to 1.0 next to a label.

    On a terminal the bar is redrawn in place (at most every 50 ms); when the stream is a pipe or
    a file, one line is written per 10 % step so logs stay readable.
    """

    def __init__(self, label: str, stream: TextIO) -> None:
        self._label = label
        self._stream = stream
        self._tty = stream.isatty()
        self._last_draw = 0.0
        self._last_step = -1
        self._fraction = 0.0
        self._detail = ""
        self._drawn_width = 0
        self._finished = False

    def __repr__(self) -> str:
        return f"<ProgressBar {self._label!r} {self._fraction:.0%}>"

    def update(self, fraction: float, detail: str = "") -> None:
        """Show ``fraction`` (clamped to 0..1) and ``detail`` after the percentage (e.g. bytes
        and speed); progress never moves backwards."""
        fraction = min(max(fraction, 0.0), 1.0)
        if fraction < self._fraction or self._finished:
            return
        self._fraction = fraction
        self._detail = detail
        if self._tty:
            now = time.monotonic()
            if fraction < 1.0 and now - self._last_draw < 0.05:
                return
            self._last_draw = now
            # Pad to the last width: a shorter detail must not leave old characters behind.
            text = self.render()
            self._stream.write("\r" + text.ljust(self._drawn_width))
            self._drawn_width = len(text)
        else:
            step = int(fraction * 10)
            if step == self._last_step:
                return
            self._last_step = step
            self._stream.write(self.render() + "\n")
        self._stream.flush()

    def finish(self) -> None:
        """Draw 100 % (keeping the last detail) and end the line."""
        self.update(1.0, self._detail)
        if self._tty and not self._finished:
            self._stream.write("\n")
            self._stream.flush()
        self._finished = True

    def render(self) -> str:
        """The bar as text, e.g. ``Loading qwen [#########.....................]  30%``."""
        filled = round(self._fraction * _WIDTH)
        bar = "#" * filled + "." * (_WIDTH - filled)
        text = f"{self._label} [{bar}] {self._fraction:4.0%}"
        return f"{text}  {self._detail}" if self._detail else text

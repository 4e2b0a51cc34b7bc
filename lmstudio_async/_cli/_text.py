"""Text from the shell that is not valid UTF-8 (argv, stdin), made sendable."""

from __future__ import annotations

import sys

from ._messages import PROG

__all__ = ["InputText"]


class InputText:
    """Replaces bytes that are not UTF-8 with U+FFFD, and says so on stderr once per command.

    Python hands such bytes over as lone surrogates (``surrogateescape``), which no JSON
    encoder accepts; a message with a few replaced characters is more useful than no message.
    """

    def __init__(self) -> None:
        self.replaced = False

    def __repr__(self) -> str:
        return f"<InputText replaced={self.replaced}>"

    def __call__(self, text: str) -> str:
        """``text``, with every undecodable byte replaced by U+FFFD."""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            return text
        try:
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # surrogates that never were bytes (e.g. a Windows argv)
            raw = text.encode("utf-8", "replace")
        if not self.replaced:
            self.replaced = True
            print(
                f"{PROG}: the input is not valid UTF-8; undecodable bytes were replaced "
                "with U+FFFD (\N{REPLACEMENT CHARACTER}).",
                file=sys.stderr,
                flush=True,
            )
        return raw.decode("utf-8", "replace")

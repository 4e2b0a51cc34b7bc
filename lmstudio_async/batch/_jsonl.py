"""Resumable JSON Lines output: one line per finished item, written whole, torn tails dropped."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec

from .._errors import LMStudioUsageError

__all__ = ["JsonlOutput"]

_log = logging.getLogger("lmstudio_async.batch")
_encoder = msgspec.json.Encoder()


class JsonlOutput:
    """A JSON Lines file of batch results that a killed run can be resumed from.

    Every record is a JSON object with an integer ``"index"`` (the item's position in the
    input) on one line. Each line goes to the operating system in one ``write`` as soon as its
    item finishes, so a killed process loses at most the items that were still running; no
    Python-side buffer holds finished results.

    Opening (``open()``, or ``with JsonlOutput(...)``) with ``resume=False`` creates the file
    and refuses one that already holds results (:class:`LMStudioUsageError`: pass
    ``resume=True`` or choose another path), so a finished run is never overwritten by
    accident; a path that cannot be opened raises :class:`LMStudioUsageError` too. With
    ``resume=True`` the existing lines are read back: :attr:`written` maps each index found to
    its record's ``"input"`` (``None`` if it has none), and a last line cut short by a kill (no
    final newline, or not valid JSON) is dropped from the file and logged. Any other unreadable
    line, or an index written twice, means the file is not (only) this runner's output and
    raises :class:`LMStudioUsageError`.
    """

    def __init__(self, path: str | os.PathLike[str], *, resume: bool = False) -> None:
        self.path = Path(path)
        self.resume = resume
        self.written: dict[int, Any] = {}
        """Every index in the file: those found when resuming (mapped to the record's
        ``"input"``, kept to check that a resumed run reads the same input), then each one
        written (mapped to ``None``: only the index is needed from then on)."""
        self.dropped_torn_line = False
        """True when opening dropped a last line that a killed run left incomplete."""
        self._file: Any = None

    def __repr__(self) -> str:
        state = "open" if self._file is not None else "closed"
        return f"<JsonlOutput {str(self.path)!r} {state} written={len(self.written)}>"

    def open(self) -> None:
        """Create or (with ``resume``) reopen the file; see the class docstring for errors."""
        if self._file is not None:
            return
        try:
            if self.resume and self.path.exists():
                self._recover()
            elif self.path.exists() and self.path.stat().st_size > 0:
                raise LMStudioUsageError(
                    f"{self.path} already holds results. Resume that run (resume=True, "
                    "or --resume on the command line) or write to another file."
                )
            # Unbuffered: every record is one os.write, so what a kill leaves behind is at
            # worst one torn last line, never a half-flushed buffer of several records.
            self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 (closed by close())
        except OSError as exc:
            raise LMStudioUsageError(
                f"Cannot use {self.path} as the batch output: {exc.strerror or exc}. "
                "Check that its folder exists and is writable."
            ) from exc

    def _recover(self) -> None:
        data = self.path.read_bytes()
        complete_end = data.rfind(b"\n") + 1
        lines = data[:complete_end].splitlines()
        torn = data[complete_end:]
        for number, line in enumerate(lines, start=1):
            record = self._parse(line, number, last=number == len(lines) and not torn)
            if record is None:
                # A complete-looking last line that does not parse was cut mid-write too.
                complete_end -= len(line) + 1
                torn = line
                break
            index = record["index"]
            if index in self.written:
                raise LMStudioUsageError(
                    f"{self.path} line {number}: index {index} is written twice, which this "
                    "runner never does; the file was edited or merged by something else."
                )
            self.written[index] = record.get("input")
        if torn:
            _log.warning(
                "%s: dropping an incomplete last line left by an interrupted run (%d bytes)",
                self.path,
                len(torn),
            )
            self.dropped_torn_line = True
            with open(self.path, "r+b") as file:
                file.truncate(complete_end)

    def _parse(self, line: bytes, number: int, *, last: bool) -> dict[str, Any] | None:
        try:
            record = msgspec.json.decode(line)
        except msgspec.DecodeError:
            record = None
        if isinstance(record, dict) and _is_index(record.get("index")):
            return record
        if last and record is None:
            return None
        raise LMStudioUsageError(
            f"{self.path} line {number} is not a batch result (a JSON object with an integer "
            "'index'); resume only files this runner wrote, or write to another file."
        )

    def write(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` as one line; ``record["index"]`` must be new to this file."""
        if self._file is None:
            raise LMStudioUsageError("Open the JsonlOutput (open() or `with`) before writing.")
        index = record.get("index")
        if not isinstance(index, int) or not _is_index(index):
            raise LMStudioUsageError(f"A batch record needs an integer 'index', got {index!r}.")
        if index in self.written:
            raise LMStudioUsageError(
                f"Index {index} is already in {self.path}; not writing it twice."
            )
        line = _encoder.encode(record) + b"\n"
        view = memoryview(line)
        while view:
            # A local file takes the whole line in one call; the loop covers short writes.
            view = view[self._file.write(view) :]
        self.written[index] = None

    def close(self) -> None:
        """Close the file. Idempotent."""
        file, self._file = self._file, None
        if file is not None:
            file.close()

    def __enter__(self) -> JsonlOutput:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0

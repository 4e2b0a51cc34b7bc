"""Resumable JSON Lines output: one line per finished item, written whole, torn tails dropped."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec

from .._errors import LMStudioUsageError

__all__ = ["JsonlOutput", "encodable"]

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
    raises :class:`LMStudioUsageError`. A record whose last line is an error (it has
    ``"error"``) is listed in :attr:`failed`; a later line for the same index supersedes it
    (what ``retry_failed`` writes), so the last record per index counts.

    While open, the file is locked (``fcntl.flock``, exclusive, on Linux and macOS): a second
    writer, e.g. two ``--resume`` runs started at once, raises :class:`LMStudioUsageError`
    instead of writing items twice. The lock is advisory (other programs may still write) and
    is released by :meth:`close` or when the process ends. Windows has no ``flock``: no lock is
    taken there, so do not run two batches on one file at once.

    Text that JSON cannot carry as UTF-8 (a lone surrogate such as ``"\\ud800"`` in a prompt)
    is written as a ``\\udXXXX`` escape in the text and the record gets ``"escaped": true``;
    the line is still written and the batch goes on.
    """

    def __init__(self, path: str | os.PathLike[str], *, resume: bool = False) -> None:
        self.path = Path(path)
        self.resume = resume
        self.written: dict[int, Any] = {}
        """Every index in the file: those found when resuming (mapped to the record's
        ``"input"``, kept to check that a resumed run reads the same input), then each one
        written (mapped to ``None``: only the index is needed from then on)."""
        self.failed: set[int] = set()
        """Indices whose last record in the file is an error (found when resuming, or written
        since)."""
        self.dropped_torn_line = False
        """True when opening dropped a last line that a killed run left incomplete."""
        self._file: Any = None

    def __repr__(self) -> str:
        state = "open" if self._file is not None else "closed"
        return f"<JsonlOutput {str(self.path)!r} {state} written={len(self.written)}>"

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close`."""
        return self._file is not None

    def open(self) -> None:
        """Create or (with ``resume``) reopen the file; see the class docstring for errors."""
        if self._file is not None:
            return
        if self.path.is_dir():
            raise LMStudioUsageError(
                f"{self.path} is a directory; the batch output is a file, e.g. "
                f"{self.path / 'out.jsonl'}."
            )
        try:
            # Unbuffered: every record is one os.write, so what a kill leaves behind is at
            # worst one torn last line, never a half-flushed buffer of several records.
            file = open(self.path, "ab", buffering=0)  # noqa: SIM115 (closed by close())
        except OSError as exc:
            raise LMStudioUsageError(
                f"Cannot use {self.path} as the batch output: {exc.strerror or exc}. "
                "Check that its folder exists and is writable."
            ) from exc
        try:
            # Locked before reading it back, so that what is read is not being appended to.
            _lock(file, self.path)
            if self.resume:
                self._recover()
            elif self.path.stat().st_size > 0:
                raise LMStudioUsageError(
                    f"{self.path} already holds results. Resume that run (resume=True, "
                    "or --resume on the command line) or write to another file."
                )
        except BaseException:
            file.close()
            raise
        self._file = file

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
            if index in self.written and index not in self.failed:
                raise LMStudioUsageError(
                    f"{self.path} line {number}: index {index} follows a result for the same "
                    "item, which this runner never writes; the file was edited or merged by "
                    "something else."
                )
            # The last record per index counts: a retried failure supersedes the error line.
            self.written[index] = record.get("input")
            if "error" in record:
                self.failed.add(index)
            else:
                self.failed.discard(index)
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
        """Append ``record`` as one line; ``record["index"]`` must be new to this file, or
        have only an error so far (in :attr:`failed`).

        Raises :class:`LMStudioUsageError` for a missing or repeated index, and ``OSError``
        (unchanged) when the file cannot take the line, e.g. a full disk."""
        if self._file is None:
            raise LMStudioUsageError("Open the JsonlOutput (open() or `with`) before writing.")
        index = record.get("index")
        if not isinstance(index, int) or not _is_index(index):
            raise LMStudioUsageError(f"A batch record needs an integer 'index', got {index!r}.")
        if index in self.written and index not in self.failed:
            raise LMStudioUsageError(
                f"Index {index} is already in {self.path}; not writing it twice."
            )
        try:
            line = _encoder.encode(record) + b"\n"
        except UnicodeEncodeError:
            escaped, _ = encodable(dict(record))
            line = _encoder.encode({**escaped, "escaped": True}) + b"\n"
        view = memoryview(line)
        while view:
            # A local file takes the whole line in one call; the loop covers short writes.
            view = view[self._file.write(view) :]
        self.written[index] = None
        if "error" in record:
            self.failed.add(index)
        else:
            self.failed.discard(index)

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


def encodable(value: Any) -> tuple[Any, bool]:
    """``value`` (plain JSON types) with every string that UTF-8 cannot carry (lone
    surrogates) escaped as ``\\udXXXX`` text; and whether anything was changed."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8"), True
        return value, False
    if isinstance(value, list):
        pairs = [encodable(item) for item in value]
        return [item for item, _ in pairs], any(changed for _, changed in pairs)
    if isinstance(value, dict):
        changed = False
        result = {}
        for key, item in value.items():
            new_key, key_changed = encodable(key)
            new_item, item_changed = encodable(item)
            result[new_key] = new_item
            changed = changed or key_changed or item_changed
        return result, changed
    return value, False


if sys.platform == "win32":

    def _lock(file: Any, path: Path) -> None:
        """Windows has no flock: no lock (documented on :class:`JsonlOutput`)."""

else:
    import fcntl

    def _lock(file: Any, path: Path) -> None:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LMStudioUsageError(
                f"{path} is being written by another batch run (it holds the file's lock). "
                "Wait for that run to end, or write to another file."
            ) from None

"""``client.files``: upload images to LM Studio for use in chats (PROTOCOL.md §4.3).

LM Studio keeps uploaded files per client identity, as temporary files deleted when the
client's last socket closes. An image goes over ``uploadFileBase64`` once per distinct content
per connection; preparing the same bytes again returns the handle of the first upload.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import math
import os
from collections.abc import AsyncIterator
from typing import IO, Any, Final

import anyio
import anyio.to_thread
import msgspec

from .._errors import LMStudioTimeoutError, LMStudioUsageError
from .._mux import Connection
from .._timeouts import operation_timeout
from ..types.files import FileHandle, FileType
from ._base import ConnectionSource, decode_result

__all__ = ["FilesNamespace", "ImageSource", "sniff_image_format"]

ImageSource = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]
"""What ``prepare_image`` accepts: a path, the image's bytes, or a binary file object."""

# A frame carries the image base64-encoded (4/3 larger); LM Studio's websocket server accepts
# frames up to 100 MiB, so anything much bigger would be cut off by the server mid-upload.
MAX_IMAGE_BYTES: Final = 64 * 1024 * 1024

# (magic prefix, offset, format name, file suffix): the formats vision models in LM Studio read.
_SIGNATURES: Final = (
    (b"\x89PNG\r\n\x1a\n", 0, "PNG", "png"),
    (b"\xff\xd8\xff", 0, "JPEG", "jpg"),
    (b"GIF87a", 0, "GIF", "gif"),
    (b"GIF89a", 0, "GIF", "gif"),
    (b"WEBP", 8, "WebP", "webp"),
    (b"BM", 0, "BMP", "bmp"),
)
_KNOWN_FORMATS: Final = "PNG, JPEG, WebP, GIF or BMP"
_IMAGE_SUFFIXES: Final = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp")


def sniff_image_format(data: bytes) -> tuple[str, str] | None:
    """``(format name, file suffix)`` of an image from its first bytes, or ``None``."""
    for magic, offset, fmt, suffix in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic and (offset == 0 or data[:4] == b"RIFF"):
            return fmt, suffix
    return None


class _Uploaded(msgspec.Struct, rename="camel"):
    identifier: str
    file_type: FileType
    size_bytes: int


class FilesNamespace:
    """``client.files``: images for vision models, uploaded once per distinct content."""

    def __init__(self, source: ConnectionSource) -> None:
        self._source = source
        # content digest -> (the connection it was uploaded on, the handle). A new connection
        # means LM Studio may have dropped the client's files, so the image is sent again.
        self._uploads: dict[str, tuple[Connection, FileHandle]] = {}
        self._locks: dict[str, _LockEntry] = {}

    def __repr__(self) -> str:
        return f"<FilesNamespace uploaded={len(self._uploads)}>"

    # `timeout=` is this SDK's per-call deadline convention (see operation_timeout).
    async def prepare_image(
        self,
        src: ImageSource,
        name: str | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> FileHandle:
        """Upload an image to LM Studio and return its :class:`FileHandle` for chats.

        ``src`` is a path (``str`` or ``os.PathLike``), the image's bytes, or a binary file
        object (opened with ``"rb"``; read from its current position). ``name`` is the file name
        the model sees; it defaults to the path's base name, the file object's ``name``, or
        ``image.<png|jpg|...>`` for bytes. A name without an image extension gets the detected
        one appended (``"scan"`` becomes ``"scan.png"``), since the upload's file type follows
        the name. A given ``name`` must be a plain file name (no ``/`` or ``\\``, no control
        characters), else :class:`LMStudioUsageError`.

        The content must be a PNG, JPEG, WebP, GIF or BMP image of at most 64 MiB; anything
        else raises :class:`LMStudioUsageError` before a byte is sent, as does an unreadable
        path (a path's size is checked before it is read). Preparing the same content again on
        this client reuses the first upload; a call made while that upload runs waits for it.
        The handle stays valid while the client is connected (LM Studio deletes a client's
        files when its last socket closes). ``timeout`` (seconds) bounds the whole call,
        including that wait, replacing ``Timeouts.rpc``; a deadline that passes raises
        :class:`LMStudioTimeoutError`.
        """
        data, default_name, total_size = await _read_source(src)
        sniffed = sniff_image_format(data)
        shown = name if name is not None else default_name
        if sniffed is None:
            raise LMStudioUsageError(
                f"prepare_image(): {shown or 'the data'} is not an image LM Studio can read "
                f"(expected {_KNOWN_FORMATS}; the content starts with {data[:8]!r}). Pass an "
                "image file, or its bytes."
            )
        if total_size is None or total_size > MAX_IMAGE_BYTES:
            size = "more than" if total_size is None else f"{total_size:,} bytes, more than"
            raise LMStudioUsageError(
                f"prepare_image(): {shown or 'the image'} is {size} the {MAX_IMAGE_BYTES:,} "
                "bytes LM Studio takes for an image over its websocket. Scale it down first."
            )
        if name is None:
            name = default_name or f"image.{sniffed[1]}"
        else:
            _check_name(name)
        if not name.lower().endswith(_IMAGE_SUFFIXES):
            # The upload's file type follows the name: keep it recognisably an image.
            name = f"{name}.{sniffed[1]}"
        digest = hashlib.sha256(data).hexdigest()
        # The deadline covers the wait for another call's upload of the same content too.
        async with operation_timeout(timeout, "client.files.prepare_image()"):
            connection = await self._source._connection("files")
            async with self._upload_lock(
                digest, connection.timeouts.rpc if timeout is None else None
            ):
                connection = await self._source._connection("files")
                cached = self._uploads.get(digest)
                if cached is not None and cached[0] is connection:
                    return msgspec.structs.replace(cached[1], name=name)
                raw = await connection.call(
                    "uploadFileBase64",
                    {"name": name, "contentBase64": base64.b64encode(data).decode("ascii")},
                )
                uploaded = decode_result(raw, _Uploaded, "uploadFileBase64")
                handle = FileHandle(
                    name=name,
                    identifier=uploaded.identifier,
                    size_bytes=uploaded.size_bytes,
                    file_type=uploaded.file_type,
                )
                self._uploads[digest] = (connection, handle)
                return handle

    @contextlib.asynccontextmanager
    async def _upload_lock(self, digest: str, wait_limit: float | None) -> AsyncIterator[None]:
        """Hold the lock of one content: concurrent calls wait for the first upload.

        ``wait_limit`` bounds the wait (``Timeouts.rpc`` when the caller gave no ``timeout=``,
        whose own deadline then covers it). The entry goes away with its last user, so the
        table does not grow with every distinct image ever prepared.
        """
        entry = self._locks.get(digest)
        if entry is None:
            entry = self._locks[digest] = _LockEntry()
        entry.users += 1
        try:
            with anyio.move_on_after(math.inf if wait_limit is None else wait_limit) as scope:
                await entry.lock.acquire()
            if scope.cancelled_caught:
                raise LMStudioTimeoutError(
                    f"client.files.prepare_image() waited more than {wait_limit:g} s "
                    "(Timeouts.rpc) for another upload of the same image."
                )
            try:
                yield
            finally:
                entry.lock.release()
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[digest]


class _LockEntry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = anyio.Lock()
        self.users = 0


def _check_name(name: object) -> None:
    """Refuse a ``name=`` that is not a plain file name (LM Studio stores it as given)."""
    if (
        not isinstance(name, str)
        or not name.strip()
        or name in {".", ".."}
        or any(ord(ch) < 32 or ch in "/\\" for ch in name)
    ):
        raise LMStudioUsageError(
            "prepare_image(): name must be a plain file name such as 'cat.png' (no directory "
            f"separators, no control characters), got {name!r}."
        )


async def _read_source(src: object) -> tuple[bytes, str | None, int | None]:
    """The bytes of an image source, the file name it suggests, and its size in bytes.

    Reads at most one byte past ``MAX_IMAGE_BYTES`` (a path's size is checked before reading),
    so refusing a huge file costs no memory; the size is ``None`` when only "too big" is known.
    """
    if isinstance(src, bytes | bytearray | memoryview):
        data = bytes(src)
        return data, None, len(data)
    if isinstance(src, str | os.PathLike):
        path = os.fspath(src)
        try:
            return await anyio.to_thread.run_sync(_read_path, path)
        except OSError as exc:
            raise LMStudioUsageError(
                f"prepare_image(): cannot read the image file {path!r}: {exc.strerror or exc}."
            ) from exc
    read: Any = getattr(src, "read", None)
    if callable(read):
        # A real file's read blocks on the disk; keep the event loop free while it runs.
        data = await anyio.to_thread.run_sync(read, MAX_IMAGE_BYTES + 1)
        if not isinstance(data, bytes | bytearray):
            raise LMStudioUsageError(
                "prepare_image(): the file object gave "
                f"{type(data).__name__}, not bytes; open the file in binary mode ('rb')."
            )
        file_name = getattr(src, "name", None)
        base_name = os.path.basename(file_name) if isinstance(file_name, str) else None
        return bytes(data), base_name, len(data) if len(data) <= MAX_IMAGE_BYTES else None
    raise LMStudioUsageError(
        f"prepare_image() takes a path, bytes or a binary file object, got {type(src).__name__}."
    )


def _read_path(path: str) -> tuple[bytes, str | None, int | None]:
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size > MAX_IMAGE_BYTES:
            # Enough of an oversized file to tell an image from something else, not the whole.
            return file.read(64), os.path.basename(path), size
        # A size of 0 may be a pipe or a file still growing: the read decides, bounded.
        data = file.read(MAX_IMAGE_BYTES + 1)
    return data, os.path.basename(path), len(data) if len(data) <= MAX_IMAGE_BYTES else None

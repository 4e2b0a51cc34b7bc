"""Encoding a request: input that cannot be sent is the caller's error, said precisely."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from .._errors import LMStudioUsageError

__all__ = ["encode_request"]


def encode_request(
    encoder: Callable[[str, int, Any], bytes], endpoint: str, request_id: int, parameter: Any
) -> bytes:
    """Encode a request; text that is not valid Unicode becomes a usage error naming where."""
    try:
        return encoder(endpoint, request_id, parameter)
    except UnicodeEncodeError as exc:
        where = _unencodable_path(msgspec.to_builtins(parameter), "")
        raise LMStudioUsageError(
            f"Cannot send the request to '{endpoint}': the text at {where or 'its parameter'} "
            f"is not valid Unicode ({exc.reason}: {exc.object[exc.start : exc.end]!r}). This "
            "usually comes from bytes decoded with errors='surrogateescape', e.g. sys.argv or "
            "os.listdir() on a non-UTF-8 system; decode them with the right encoding, or "
            "clean the text with text.encode('utf-8', 'replace').decode('utf-8')."
        ) from None
    except (msgspec.EncodeError, TypeError) as exc:
        raise LMStudioUsageError(
            f"Cannot send the request to '{endpoint}': its parameter is not JSON-serializable "
            f"({exc})."
        ) from exc


def _unencodable_path(value: Any, path: str) -> str | None:
    """Where in a request the first string that is not valid UTF-8 sits (``a.b[2]``)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "the parameter"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _unencodable_path(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _unencodable_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None

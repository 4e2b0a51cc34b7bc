"""The ``system``, ``files`` and ``repository`` namespaces (PROTOCOL.md §4.2-§4.4).

Only what SDK clients touch: listing, version/info, the ``alive`` channel, temp-file upload.
``repository`` lives in :mod:`._repository`.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

import anyio

from . import _envelope as env
from . import _failures as failures
from ._connection import MISSING, ChannelContext, ChannelEndpoint, Connection, Namespace
from ._envelope import InvalidParameter, SimulatorError

__all__ = ["file_type", "files_namespace", "system_namespace"]

# The ``fileType`` LM Studio gives an upload, by file-name suffix (PROTOCOL.md §5.1); other
# names are "text/other", the catch-all the app's chat accepts as a document.
_FILE_TYPES = {
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"), "image"),
    ".txt": "text/plain",
    ".pdf": "application/pdf",
    ".doc": "application/word",
    ".docx": "application/word",
}


def file_type(name: str) -> str:
    """The ``fileType`` of an uploaded file called ``name`` (``"text/other"`` if unknown)."""
    suffix = os.path.splitext(name)[1].lower()
    return _FILE_TYPES.get(suffix, "text/other")


def _void(param: Any) -> None:
    if param is not MISSING:
        raise InvalidParameter("expected no parameter")


async def _list_downloaded(conn: Connection, param: Any) -> Any:
    _void(param)
    return [spec.info() for spec in conn.state.catalog.values()]


async def _list_variants(conn: Connection, param: Any) -> Any:
    param = env.require_object(param, "parameter")
    spec = conn.state.find_spec(env.require_str(param, "modelKey"))
    if spec is None:
        raise failures.path_not_found(param["modelKey"], list(conn.state.catalog))
    if not spec.variants:
        # LM Studio throws for a model downloaded in one form only (the 2.0 SDK documents it).
        raise SimulatorError(
            env.serialized_error(f'Model "{param["modelKey"]}" does not have any variants')
        )
    return [conn.state.variants[key].info() for key in spec.variants]


async def _version(conn: Connection, param: Any) -> Any:
    _void(param)
    return {"version": conn.state.version, "build": conn.state.build}


async def _info(conn: Connection, param: Any) -> Any:
    _void(param)
    return {"pid": os.getpid(), "isDaemon": False, "version": conn.state.version}


async def _notify(conn: Connection, param: Any) -> Any:
    param = env.require_object(param, "parameter")
    env.require_str(param, "title")
    return MISSING


async def _experiment_flags(conn: Connection, param: Any) -> Any:
    _void(param)
    return []


async def _set_experiment_flag(conn: Connection, param: Any) -> Any:
    param = env.require_object(param, "parameter")
    env.require_str(param, "code")
    env.require_bool(param, "value")
    return MISSING


def _validate_void(param: Any) -> None:
    _void(param)


async def _alive(ctx: ChannelContext, _: None) -> None:
    # Held open for the socket's lifetime; clients use it to notice disconnection.
    await anyio.sleep_forever()


def system_namespace() -> Namespace:
    """All ``/system`` endpoints the simulator serves."""
    return Namespace(
        rpcs={
            "listDownloadedModels": _list_downloaded,
            "listDownloadedModelVariants": _list_variants,
            "version": _version,
            "info": _info,
            "notify": _notify,
            "getExperimentFlags": _experiment_flags,
            "setExperimentFlag": _set_experiment_flag,
        },
        channels={"alive": ChannelEndpoint(_validate_void, _alive, frozenset())},
    )


async def _upload_file(conn: Connection, param: Any) -> Any:
    param = env.require_object(param, "parameter")
    name = env.require_str(param, "name")
    content = param.get("contentBase64")
    if not isinstance(content, str):
        raise InvalidParameter("contentBase64: expected string")
    try:
        size = len(base64.b64decode(content, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise InvalidParameter(f"contentBase64: {exc}") from None
    kind = file_type(name)
    # Files belong to the client identity (shared by all its sockets), as in LM Studio.
    files = conn.state.files.setdefault(conn.client_identifier, {})
    identifier = f"{next(conn.state.file_serial)}-{name}"
    files[identifier] = {"name": name, "sizeBytes": size, "fileType": kind}
    return {"identifier": identifier, "fileType": kind, "sizeBytes": size}


def files_namespace() -> Namespace:
    """``/files``: temporary file upload only."""
    return Namespace(rpcs={"uploadFileBase64": _upload_file})

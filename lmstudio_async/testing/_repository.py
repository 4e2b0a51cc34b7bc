"""The ``/repository`` namespace: model search, paced downloads and LM Link (PROTOCOL.md §4.4).

Hub login and artifact endpoints answer as an LM Studio that is not signed in to the hub
would, so a 2.0 client calling them gets an answer instead of waiting forever.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import anyio

from . import _envelope as env
from ._connection import MISSING, ChannelContext, ChannelEndpoint, Connection, Namespace
from ._envelope import InvalidParameter, SimulatorError
from ._hub import DownloadableModel, DownloadRecord, fit_estimation

__all__ = ["repository_namespace"]

_DOWNLOAD_STEPS = 10  # at least this many progress packets per download
_PROGRESS_INTERVAL = 0.05  # and one at least this often, however long the download
_DEFAULT_SEARCH_LIMIT = 10


def _void(param: Any) -> None:
    if param is not MISSING:
        raise InvalidParameter("expected no parameter")


def _not_found(what: str) -> SimulatorError:
    return SimulatorError(
        env.serialized_error(
            f"Cannot find {what}",
            suggestion="Search again with searchModels and use one of its results.",
        )
    )


# ---- search and download options ---------------------------------------------------------


def _entry(model: DownloadableModel, term: str) -> dict[str, Any]:
    repo = model.name.rsplit("/", 1)[-1].lower()
    entry: dict[str, Any] = {
        "name": model.name,
        "identifier": {"type": model.source, "identifier": model.name},
    }
    if term.strip().lower() in (model.name.lower(), repo):
        entry["exact"] = True
    if model.staff_pick:
        entry["staffPick"] = True
    return entry


async def _search_models(conn: Connection, param: Any) -> Any:
    param = env.require_object(param, "parameter")
    opts = env.require_object(param.get("opts"), "opts")
    term = opts.get("searchTerm", "")
    if not isinstance(term, str):
        raise InvalidParameter("opts.searchTerm: expected string")
    limit = opts.get("limit", _DEFAULT_SEARCH_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 25:
        raise InvalidParameter("opts.limit: expected an integer from 1 to 25")
    types = opts.get("compatibilityTypes")
    if types is not None and not isinstance(types, list):
        raise InvalidParameter("opts.compatibilityTypes: expected array")
    found = conn.state.hub.search(term)
    if types is not None and "gguf" not in types:
        found = []  # every simulated download is a GGUF file
    return {"results": [_entry(model, term) for model in found[:limit]]}


def _option(model: DownloadableModel, index: int, quantization: str, size: int) -> dict[str, Any]:
    repo = model.name.rsplit("/", 1)[-1]
    option: dict[str, Any] = {
        "quantization": quantization,
        "name": f"{repo}-{quantization}.gguf",
        "sizeBytes": size,
        "fitEstimation": fit_estimation(size),
        "downloadIdentifier": model.download_identifier(quantization),
        "indexedModelIdentifier": f"{model.name}/{repo}-{quantization}.gguf",
        "compatibilityType": "gguf",
    }
    if index == 0:
        option["recommended"] = True
    return option


async def _download_options(conn: Connection, param: Any) -> Any:
    param = env.require_object(param, "parameter")
    identifier = env.require_object(
        param.get("modelSearchResultIdentifier"), "modelSearchResultIdentifier"
    )
    source = identifier.get("type")
    name = env.require_str(identifier, "identifier")
    if source not in ("catalog", "hf"):
        raise InvalidParameter("modelSearchResultIdentifier.type: expected 'catalog' or 'hf'")
    model = conn.state.hub.find(source, name)
    if model is None:
        raise _not_found(f'the model "{name}"')
    return {
        "results": [
            _option(model, index, quantization, size)
            for index, (quantization, size) in enumerate(model.quantizations)
        ]
    }


# ---- the downloadModel channel -------------------------------------------------------------


def _validate_download(param: Any) -> str:
    return env.require_str(env.require_object(param, "creationParameter"), "downloadIdentifier")


async def _download(ctx: ChannelContext, download_identifier: str) -> None:
    hub = ctx.state.hub
    found = hub.option(download_identifier)
    if found is None:
        raise _not_found(f'a download option "{download_identifier}"')
    model, quantization, size = found
    record = DownloadRecord(download_identifier)
    hub.downloads.append(record)

    def on_cancel() -> None:
        record.cancel_received = True

    ctx.on_cancel = on_cancel
    steps = max(_DOWNLOAD_STEPS, round(hub.download_seconds / _PROGRESS_INTERVAL))
    step = hub.download_seconds / steps
    speed = size / hub.download_seconds if hub.download_seconds > 0 else float(size)
    try:
        for n in range(1, steps + 1):
            if await ctx.wait_cancel(step):
                record.status = "cancelled"
                raise SimulatorError(env.serialized_error("The download was cancelled"))
            update = {
                "downloadedBytes": size * n // steps,
                "totalBytes": size,
                "speedBytesPerSecond": speed,
            }
            await ctx.send({"type": "downloadProgress", "update": update})
            record.progress_sent += 1
        await ctx.send({"type": "startFinalizing"})
        spec = model.spec(quantization, size)
        variant = dataclasses.replace(spec, model_key=model.variant_key(quantization))
        ctx.state.add_variant(spec.model_key, variant)
        await ctx.send({"type": "success", "defaultIdentifier": spec.model_key})
        record.status = "finished"
    except anyio.get_cancelled_exc_class():
        record.status = "disconnected"
        raise


# ---- LM Link -------------------------------------------------------------------------------


async def _lm_link_status(conn: Connection, param: Any) -> Any:
    _void(param)
    hub = conn.state.hub
    local, *peers = hub.devices
    result: dict[str, Any] = {
        "status": "offline" if hub.lm_link_disabled else "online",
        "issues": ["deviceDisabled"] if hub.lm_link_disabled else [],
        "peers": [
            {
                "deviceIdentifier": peer.device_identifier,
                "deviceName": peer.device_name,
                "status": "connected" if hub.peer_connected(peer) else "disconnected",
            }
            for peer in peers
        ],
        "deviceIdentifier": local.device_identifier,
        "deviceName": local.device_name,
    }
    if hub.preferred_device is not None:
        result["preferredDeviceIdentifier"] = hub.preferred_device
    return result


async def _lm_link_set_disabled(conn: Connection, param: Any) -> Any:
    param = env.require_object(param, "parameter")
    conn.state.hub.lm_link_disabled = env.require_bool(param, "disabled")
    return MISSING


async def _lm_link_set_preferred(conn: Connection, param: Any) -> Any:
    param = env.require_object(param, "parameter")
    identifier = env.require_str(param, "deviceIdentifier")
    if conn.state.hub.device(identifier) is None:
        raise SimulatorError(env.serialized_error(f'No LM Link device "{identifier}"'))
    conn.state.hub.preferred_device = identifier
    return MISSING


async def _lm_link_update_name(conn: Connection, param: Any) -> Any:
    param = env.require_object(param, "parameter")
    name = env.require_str(param, "deviceName")
    hub = conn.state.hub
    local = hub.devices[0]
    hub.devices[0] = type(local)(local.device_identifier, name, local.connected)
    return MISSING


# ---- hub account (signed out) --------------------------------------------------------------


async def _is_authenticated(conn: Connection, param: Any) -> Any:
    _void(param)
    return {"authenticated": False}


async def _authentication_status(conn: Connection, param: Any) -> Any:
    _void(param)
    return {"authenticationStatus": {"type": "none"}}


async def _nothing(conn: Connection, param: Any) -> Any:
    return MISSING


async def _no_owners(conn: Connection, param: Any) -> Any:
    _void(param)
    return {"owners": []}


def repository_namespace() -> Namespace:
    """All ``/repository`` endpoints the simulator serves."""
    return Namespace(
        rpcs={
            "searchModels": _search_models,
            "getModelDownloadOptions": _download_options,
            "lmLinkStatus": _lm_link_status,
            "lmLinkSetDisabled": _lm_link_set_disabled,
            "lmLinkSetPreferredDevice": _lm_link_set_preferred,
            "lmLinkUpdateDeviceName": _lm_link_update_name,
            "isAuthenticated": _is_authenticated,
            "getAuthenticationStatus": _authentication_status,
            "deauthenticate": _nothing,
            "getWritableArtifactOwners": _no_owners,
        },
        channels={"downloadModel": ChannelEndpoint(_validate_download, _download)},
    )

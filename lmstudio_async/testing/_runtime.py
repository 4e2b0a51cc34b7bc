"""The ``/runtime`` and ``/plugins`` namespaces, enough for a 2.0 client to get answers.

``/runtime`` reports one simulated llama.cpp engine (listing, selections, hardware survey) and
no downloadable runtime extensions. ``/plugins`` has no plugins: every request is answered
with an error saying so, instead of the silence that would leave a client waiting.
"""

from __future__ import annotations

from typing import Any

from . import _envelope as env
from ._connection import MISSING, ChannelContext, ChannelEndpoint, Connection, Namespace
from ._envelope import InvalidParameter, SimulatorError

__all__ = ["NO_PLUGINS", "plugins_namespace", "runtime_namespace"]

NO_PLUGINS = "Plugins are not available in the LM Studio simulator"

_ENGINE: dict[str, Any] = {
    "name": "llama.cpp-simulated",
    "version": "1.0.0",
    "engine": "llama.cpp",
    "platform": "linux",
    "cpu": {"architecture": "x86_64", "instructionSetExtensions": ["AVX2"]},
    "supportedModelFormatNames": ["GGUF"],
}
_MEMORY = 16 * 1024**3


def _engine_specifier(value: Any, what: str) -> dict[str, Any]:
    specifier = env.require_object(value, what)
    env.require_str(specifier, "name")
    env.require_str(specifier, "version")
    return specifier


async def _list_engines(conn: Connection, param: Any) -> Any:
    return [_ENGINE]


async def _engine_selections(conn: Connection, param: Any) -> Any:
    # The one superjson-encoded result (PROTOCOL.md §4.6): a Map, as superjson writes it.
    selected = {"name": _ENGINE["name"], "version": _ENGINE["version"]}
    return {"json": [["GGUF", selected]], "meta": {"values": ["map"]}}


async def _select_engine(conn: Connection, param: Any) -> Any:
    param = env.require_object(param, "parameter")
    engine = _engine_specifier(param.get("engine"), "engine")
    if param.get("modelFormatName") not in _ENGINE["supportedModelFormatNames"]:
        raise InvalidParameter("modelFormatName: expected a format the engine supports")
    if engine["name"] != _ENGINE["name"]:
        raise SimulatorError(env.serialized_error(f'No runtime engine "{engine["name"]}"'))
    return MISSING


async def _remove_engine(conn: Connection, param: Any) -> Any:
    engine = _engine_specifier(param, "parameter")
    raise SimulatorError(
        env.serialized_error(
            f'Cannot remove runtime engine "{engine["name"]}"',
            cause="The simulator's only engine is built in.",
        )
    )


async def _survey_hardware(conn: Connection, param: Any) -> Any:
    engine = {key: _ENGINE[key] for key in ("name", "version", "engine", "platform")}
    return {
        "status": "ok",
        "engines": [
            {
                **engine,
                "compatibility": {"status": "compatible"},
                "supportedModelFormatNames": _ENGINE["supportedModelFormatNames"],
                "hardwareSurvey": {
                    "gpuSurveyResult": {
                        "result": {"code": "noDevicesFound", "message": "No GPU simulated"},
                        "gpuInfo": [],
                    },
                    "cpuSurveyResult": {
                        "result": {"code": "success", "message": ""},
                        "cpuInfo": {
                            "architecture": "x86_64",
                            "supportedInstructionSetExtensions": ["AVX2"],
                        },
                    },
                },
                "memoryInfo": {"ramCapacity": _MEMORY, "vramCapacity": 0, "totalMemory": _MEMORY},
            }
        ],
    }


async def _search_extensions(conn: Connection, param: Any) -> Any:
    param = env.require_object(param, "parameter")
    env.require_str(param, "query")
    return {"extensions": []}


def _validate_extension_download(param: Any) -> str:
    param = env.require_object(param, "creationParameter")
    env.require_str(param, "version")
    return env.require_str(param, "name")


async def _download_extension(ctx: ChannelContext, name: str) -> None:
    raise SimulatorError(env.serialized_error(f'No runtime extension "{name}" to download'))


def runtime_namespace() -> Namespace:
    """All ``/runtime`` endpoints the simulator serves."""
    return Namespace(
        rpcs={
            "listEngines": _list_engines,
            "getEngineSelections": _engine_selections,
            "selectEngine": _select_engine,
            "removeEngine": _remove_engine,
            "surveyHardware": _survey_hardware,
            "searchRuntimeExtensions": _search_extensions,
        },
        channels={
            "downloadRuntimeExtension": ChannelEndpoint(
                _validate_extension_download, _download_extension
            )
        },
    )


def plugins_namespace() -> Namespace:
    """``/plugins``: every endpoint answers that there are no plugins."""
    return Namespace(unsupported=NO_PLUGINS)

"""A protocol-faithful LM Studio simulator for tests, demos and benchmarks.

``Simulator`` serves the LM Studio SDK websocket protocol (namespaces ``/llm``,
``/embedding``, ``/system``, ``/files``, ``/repository``, ``/runtime``, ``/plugins`` plus
``GET /lmstudio-greeting``) on a loopback port. It is an independent implementation of the
*server* side: it imports nothing from the rest of ``lmstudio_async``, so client bugs cannot
hide in shared code. The official ``lmstudio`` SDK and ``@lmstudio/sdk`` 2.0.0 run against it
unmodified.

Models are deterministic: ``default_reply`` and ``default_completion`` say what they answer,
``ScriptedReply`` scripts exact replies (text, per-fragment reasoning, tool calls, errors,
pacing), queued per model with ``script`` or aimed at matching predictions with ``add_rule``
(``load_rules`` reads the same rules from a JSON file); ``Faults`` and ``fault_endpoint``
inject misbehaviour (stalls, drops, malformed frames, failing or slow RPCs, rejected
channels, cancels never acknowledged, failing loads)::

    async with Simulator() as sim:
        sim.script("qwen2.5-7b-instruct", ScriptedReply(content="Hi there"))
        sim.add_rule(ScriptedReply(content="Sunny"), last_user_message=r"weather")
        ...  # point a client at sim.base_url

A pytest plugin (``lmstudio_async.testing.pytest_plugin``) provides ``lmstudio_simulator``
and ``lmstudio_client`` fixtures.

Run standalone with ``python -m lmstudio_async.testing --port 1234`` (``--catalog FILE`` serves
the models a JSON catalogue lists, see :func:`read_catalog`).
"""

import typing as _typing

from .._lazy import lazy_exports as _lazy_exports
from ._catalog import CatalogFile, ModelSpec, default_catalog, read_catalog
from ._envelope import serialized_error as lmstudio_error
from ._faults import EndpointFault, Faults
from ._hub import DownloadableModel, DownloadRecord, Hub, LinkedDevice
from ._models import default_completion, default_reply
from ._rules import Rule
from ._script_file import ScriptFileError, load_rules
from ._scripting import (
    Fragment,
    PredictionRecord,
    PredictionRequest,
    ScriptedReply,
    ScriptedToolCall,
)

if _typing.TYPE_CHECKING:
    from ._server import Simulator, serve

# The server (aiohttp and every namespace) is imported on first use: the pytest plugin lives in
# this package, and pytest imports it at every start in any project that installs ours.
_LAZY = {"Simulator": "._server", "serve": "._server"}

__all__ = [
    "CatalogFile",
    "DownloadRecord",
    "DownloadableModel",
    "EndpointFault",
    "Faults",
    "Fragment",
    "Hub",
    "LinkedDevice",
    "ModelSpec",
    "PredictionRecord",
    "PredictionRequest",
    "Rule",
    "ScriptFileError",
    "ScriptedReply",
    "ScriptedToolCall",
    "Simulator",
    "default_catalog",
    "default_completion",
    "default_reply",
    "lmstudio_error",
    "load_rules",
    "read_catalog",
    "serve",
]


__getattr__, __dir__ = _lazy_exports(globals(), _LAZY)

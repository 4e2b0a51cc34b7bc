"""A protocol-faithful LM Studio simulator for tests, demos and benchmarks.

``Simulator`` serves the LM Studio SDK websocket protocol (namespaces ``/llm``,
``/embedding``, ``/system``, ``/files``, ``/repository`` plus ``GET /lmstudio-greeting``) on a
loopback port. It is an independent implementation of the *server* side: it imports nothing
from the rest of ``lmstudio_async``, so client bugs cannot hide in shared code. The official
``lmstudio`` SDK runs against it unmodified.

Models are deterministic: ``default_reply`` and ``default_completion`` say what they answer,
``ScriptedReply`` queues exact replies (text, reasoning, tool calls, errors, pacing) and
``Faults`` injects misbehaviour (stalls, drops, malformed frames, slow or silent RPCs)::

    async with Simulator() as sim:
        sim.script("qwen2.5-7b-instruct", ScriptedReply(content="Hi there"))
        ...  # point a client at sim.base_url

Run standalone with ``python -m lmstudio_async.testing --port 1234`` (``--catalog FILE`` serves
the models a JSON catalogue lists, see :func:`read_catalog`).
"""

from ._catalog import CatalogFile, ModelSpec, default_catalog, read_catalog
from ._faults import Faults
from ._models import default_completion, default_reply
from ._scripting import PredictionRecord, ScriptedReply, ScriptedToolCall
from ._server import Simulator, serve

__all__ = [
    "CatalogFile",
    "Faults",
    "ModelSpec",
    "PredictionRecord",
    "ScriptedReply",
    "ScriptedToolCall",
    "Simulator",
    "default_catalog",
    "default_completion",
    "default_reply",
    "read_catalog",
    "serve",
]

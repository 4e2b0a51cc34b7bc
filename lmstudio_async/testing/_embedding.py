"""The ``embedding`` namespace: base-model endpoints plus ``embedString`` (PROTOCOL.md §4.1)."""

from __future__ import annotations

from typing import Any

import anyio

from . import _envelope as env
from . import _models
from ._basemodel import base_model_namespace
from ._connection import Connection, Namespace
from ._envelope import InvalidParameter

__all__ = ["embedding_namespace"]


async def _embed_string(conn: Connection, param: Any) -> Any:
    param = env.require_object(param, "parameter")
    specifier = env.require_specifier(param, "modelSpecifier")
    text = param.get("inputString")
    if not isinstance(text, str):
        raise InvalidParameter("inputString: expected string")
    instance = conn.state.resolve("embedding", specifier)
    instance.touch()
    running = conn.state.embeddings_running
    running[instance.identifier] = running.get(instance.identifier, 0) + 1
    try:
        # Meanwhile the model's processing state says computingEmbedding.
        await anyio.sleep(conn.state.embed_duration)
    finally:
        instance.touch()  # TTL is idle time, counted from the end of the request
        running[instance.identifier] -= 1
        if not running[instance.identifier]:
            del running[instance.identifier]
    return {"embedding": _models.embed(text, instance.spec.embedding_dimensions)}


def embedding_namespace() -> Namespace:
    """All ``/embedding`` endpoints."""
    ns = base_model_namespace("embedding")
    del ns.rpcs["getBasePredictionConfig"]
    ns.rpcs["embedString"] = _embed_string
    return ns

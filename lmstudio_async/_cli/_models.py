"""``models``, ``load`` and ``unload``: what is downloaded, what is loaded, and changing that."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .._client import LMStudioClient
from .._errors import LMStudioModelNotFoundError
from ..types.models import EmbeddingModelInfo, ModelInfo
from ._connect import add_connection_arguments, connected_client
from ._interrupts import Interrupts
from ._numbers import positive_float
from ._progress import ProgressBar

__all__ = ["add_model_commands"]


def add_model_commands(commands: Any) -> None:
    models = commands.add_parser(
        "models",
        help="list downloaded models and what is loaded",
        description="List every downloaded model and the identifiers it is loaded under.",
    )
    add_connection_arguments(models)
    models.set_defaults(run=run_models)

    load = commands.add_parser(
        "load",
        help="load a model, with a progress bar",
        description="Load a new instance of a downloaded model (an LLM or an embedding model), "
        "showing progress on stderr; prints the instance identifier.",
    )
    load.add_argument("model", metavar="MODEL", help="model key, as listed by `models`")
    load.add_argument(
        "--ttl", type=positive_float, help="seconds of idleness after which LM Studio unloads it"
    )
    add_connection_arguments(load)
    load.set_defaults(run=run_load)

    unload = commands.add_parser(
        "unload",
        help="unload a loaded model",
        description="Unload the model instance loaded under IDENTIFIER.",
    )
    unload.add_argument("identifier", metavar="IDENTIFIER", help="as listed by `models`")
    add_connection_arguments(unload)
    unload.set_defaults(run=run_unload)


def _kind(info: ModelInfo) -> str:
    return "embedding" if isinstance(info, EmbeddingModelInfo) else "llm"


def _size(size_bytes: int) -> str:
    return f"{size_bytes / 1e9:.1f} GB"


async def run_models(args: argparse.Namespace, interrupts: Interrupts) -> int:
    async with connected_client(args) as client:
        downloaded = await client.system.list_downloaded_models()
        loaded_llms = await client.llm.list_loaded()
        loaded_embeddings = await client.embedding.list_loaded()
    loaded_as: dict[str, list[str]] = {}
    for model_key, identifier in [
        *((h.info.model_key, h.identifier) for h in loaded_llms),
        *((h.info.model_key, h.identifier) for h in loaded_embeddings),
    ]:
        loaded_as.setdefault(model_key, []).append(identifier)
    rows = [("MODEL", "TYPE", "SIZE", "LOADED AS")]
    for model in sorted(downloaded, key=lambda i: (_kind(i), i.model_key)):
        loaded = ", ".join(loaded_as.get(model.model_key, []))
        rows.append((model.model_key, _kind(model), _size(model.size_bytes), loaded))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        print("  ".join([*cells, row[3]]).rstrip())
    if not downloaded:
        print("(no models downloaded)", file=sys.stderr)
    return 0


async def _find_downloaded(client: LMStudioClient, model_key: str) -> ModelInfo | None:
    for info in await client.system.list_downloaded_models():
        if info.model_key == model_key:
            return info
    return None


async def run_load(args: argparse.Namespace, interrupts: Interrupts) -> int:
    bar = ProgressBar(f"Loading {args.model}", sys.stderr)
    async with connected_client(args) as client:
        info = await _find_downloaded(client, args.model)
        is_embedding = info is not None and isinstance(info, EmbeddingModelInfo)
        namespace: Any = client.embedding if is_embedding else client.llm
        handle = await namespace.load(args.model, ttl=args.ttl, on_progress=bar.update)
        bar.finish()
        print(handle.identifier)
    return 0


async def run_unload(args: argparse.Namespace, interrupts: Interrupts) -> int:
    async with connected_client(args) as client:
        for namespace in (client.llm, client.embedding):
            if any(h.identifier == args.identifier for h in await namespace.list_loaded()):
                await namespace.unload(args.identifier)
                print(f"Unloaded {args.identifier}", file=sys.stderr)
                return 0
        loaded = [h.identifier for h in await client.llm.list_loaded()]
        loaded += [h.identifier for h in await client.embedding.list_loaded()]
    raise LMStudioModelNotFoundError(
        f"No model is loaded as {args.identifier!r}. Loaded: {', '.join(loaded) or 'none'}."
    )

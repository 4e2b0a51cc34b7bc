"""``get``: search LM Studio's catalogue and download a model, with a progress bar (``lms get``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .._client import LMStudioClient
from .._errors import LMStudioModelNotFoundError, LMStudioUsageError
from .._namespaces import ModelSearchResultDownloadOption, ModelSearchResultEntry
from ..types.repository import DownloadProgress
from ._connect import add_connection_arguments, connected_client
from ._interrupts import Interrupts
from ._progress import ProgressBar

__all__ = ["add_get_command"]


def add_get_command(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "get",
        help="search for a model and download it, with a progress bar",
        description="Search LM Studio's model catalogue for QUERY and download the best match "
        "(an exact name match, else the first result) in LM Studio's recommended quantization. "
        "Progress (bytes and speed) goes to stderr; the model key to load goes to stdout. A "
        "model that is already downloaded is not downloaded again (exit status 0) unless "
        "--force is given. Ctrl-C cancels the download in LM Studio.",
    )
    parser.add_argument("query", metavar="QUERY", help="model name or search words")
    parser.add_argument(
        "--quantization", help="download this quantization (e.g. Q8_0) instead of the recommended"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="download again even if LM Studio already has this model file",
    )
    add_connection_arguments(parser)
    parser.set_defaults(run=run_get)


def _choose_result(results: list[ModelSearchResultEntry], query: str) -> ModelSearchResultEntry:
    if not results:
        raise LMStudioModelNotFoundError(
            f"No model in LM Studio's catalogue matches {query!r}; try fewer or other words."
        )
    return next((r for r in results if r.exact), results[0])


def _choose_option(
    options: list[ModelSearchResultDownloadOption], name: str, quantization: str | None
) -> ModelSearchResultDownloadOption:
    if not options:
        raise LMStudioModelNotFoundError(f"LM Studio offers no download of {name!r}.")
    if quantization is None:
        return next((o for o in options if o.recommended), options[0])
    for option in options:
        if (option.quantization or "").lower() == quantization.lower():
            return option
    offered = ", ".join(o.quantization or o.name for o in options)
    raise LMStudioUsageError(f"{name!r} has no {quantization} download; it comes as: {offered}.")


async def _downloaded_key(client: LMStudioClient, indexed_identifier: str | None) -> str | None:
    """The key of the downloaded model (or model with a variant) that is this file, if any."""
    if not indexed_identifier:
        return None
    for model in await client.list_downloaded_models():
        if model.indexed_model_identifier == indexed_identifier:
            return model.model_key
        if model.variants:
            variants = await client.system.list_downloaded_model_variants(model.model_key)
            if any(v.indexed_model_identifier == indexed_identifier for v in variants):
                return model.model_key
    return None


def _progress_detail(progress: DownloadProgress) -> str:
    """``1.2 / 5.0 GB  45.3 MB/s``: what ``lms get`` shows next to its bar."""
    speed = progress.speed_bytes_per_second
    return f"{_size(progress.downloaded_bytes)} / {_size(progress.total_bytes)}  {_size(speed)}/s"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


async def run_get(args: argparse.Namespace, interrupts: Interrupts) -> int:
    async with connected_client(args) as client:
        results = await client.repository.search_models(args.query)
        result = _choose_result(results, args.query)
        option = _choose_option(await result.get_download_options(), result.name, args.quantization)
        what = f"{result.name} {option.quantization or option.name}"
        existing = await _downloaded_key(client, option.indexed_model_identifier)
        if existing is not None and not args.force:
            print(
                f"{what} is already downloaded (--force downloads it again).",
                file=sys.stderr,
                flush=True,
            )
            print(existing)
            return 0
        print(f"Downloading {what} ({_size(option.size_bytes)})", file=sys.stderr, flush=True)
        bar = ProgressBar("Downloading", sys.stderr)

        def on_progress(progress: DownloadProgress) -> None:
            bar.update(progress.fraction, _progress_detail(progress))

        def on_start_finalizing() -> None:
            bar.finish()
            print("Finalizing download...", file=sys.stderr, flush=True)

        model_key = await option.download(
            on_progress=on_progress, on_start_finalizing=on_start_finalizing
        )
        bar.finish()
        print(model_key)
    return 0

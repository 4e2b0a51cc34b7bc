"""Batch jobs: many prompts (or texts to embed) over one or more LM Studio hosts, resumable.

:func:`run_batch` runs the items with bounded concurrency per model handle and yields each
:class:`BatchOutcome` as it completes; a dropped host's in-flight items fail over to the other
handles; leaving the block cancels what is still running in LM Studio. With ``output=`` every
finished item is one line of a :class:`JsonlOutput` file, and ``resume=True`` continues a killed
run without redoing or duplicating an item::

    from lmstudio_async.batch import run_batch

    async with LMStudioClient("gpu-1:1234") as a, LMStudioClient("gpu-2:1234") as b:
        models = [await c.llm.model("qwen2.5-7b-instruct") for c in (a, b)]
        async with run_batch(models, prompts, output="out.jsonl", resume=True) as run:
            async for outcome in run:
                ...

The command line runs the same thing: ``lmstudio-async batch prompts.txt --output out.jsonl``.
"""

from ._items import BatchOutcome, BatchProgress, BatchRequest, BatchTask
from ._jsonl import JsonlOutput
from ._runner import DEFAULT_CONCURRENCY, BatchRun, run_batch

__all__ = [
    "DEFAULT_CONCURRENCY",
    "BatchOutcome",
    "BatchProgress",
    "BatchRequest",
    "BatchRun",
    "BatchTask",
    "JsonlOutput",
    "run_batch",
]

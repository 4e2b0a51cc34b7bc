"""What a model costs before it loads, and what a loaded one is doing (LM Studio 2.0 RPCs)."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "EstimatedModelMemoryUsage",
    "EstimatedResourcesUsage",
    "ModelProcessingState",
    "ModelProcessingStatus",
]

ModelProcessingStatus = Literal["idle", "processingPrompt", "generating", "computingEmbedding"]
"""What a loaded model is busy with (newer values reach you as plain strings)."""


class EstimatedModelMemoryUsage(msgspec.Struct, rename="camel", kw_only=True, frozen=True):
    """LM Studio's memory estimate for loading a model, in bytes.

    ``model_*`` is the weights, ``context_*`` the context (KV cache) at the requested context
    length, ``total_*`` both. ``*_vram_bytes`` is the part on the GPU, ``*_bytes`` the whole
    (GPU and system memory together). ``confidence`` is ``"high"`` when LM Studio knows the
    model's layout, ``"low"`` when it had to guess.
    """

    confidence: Literal["high", "low"] | str
    model_vram_bytes: int
    context_vram_bytes: int
    total_vram_bytes: int
    model_bytes: int
    context_bytes: int
    total_bytes: int


class EstimatedResourcesUsage(msgspec.Struct, rename="camel", kw_only=True, frozen=True):
    """What ``estimate_resources_usage()`` returns: the memory estimate and the verdict.

    ``passes_guardrails`` is whether LM Studio's model-loading guardrails (its setting against
    loading models that would overload the machine) would let this load go ahead.
    """

    memory: EstimatedModelMemoryUsage
    passes_guardrails: bool


class ModelProcessingState(msgspec.Struct, kw_only=True, frozen=True):
    """What a loaded model is doing: ``status``, and ``queued`` requests (the running one too)."""

    status: ModelProcessingStatus | str
    queued: int

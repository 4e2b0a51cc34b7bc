"""``estimateModelUsage``: a deterministic memory estimate for loading a downloaded model.

The device the load would go to (``deviceIdentifier``, else LM Link's preferred device, else
this machine; an unknown or unreachable one is refused like a load) has its
``LinkedDevice.memory_bytes`` of memory (this machine: :data:`MACHINE_MEMORY_BYTES`), all of it
usable by the GPU. Weights take the model's file size; the context takes
:data:`CONTEXT_BYTES_PER_TOKEN` per token of the requested (else default) context length, as
requested even beyond the model's trained maximum (LM Studio estimates what was asked for); the
GPU share follows the requested offload ratio (``"max"`` or absent: all of it). A load passes
the guardrails when the total fits.
"""

from __future__ import annotations

from typing import Any

from . import _envelope as env
from ._catalog import ModelType
from ._connection import Connection
from ._devices import placement, requested_device
from ._envelope import InvalidParameter

__all__ = ["CONTEXT_BYTES_PER_TOKEN", "MACHINE_MEMORY_BYTES", "estimate_model_usage"]

MACHINE_MEMORY_BYTES = 16 * 1024**3
CONTEXT_BYTES_PER_TOKEN = 64 * 1024


def _offload_ratio(value: Any) -> float:
    if value == "off":
        return 0.0
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    return 1.0


def estimate_model_usage(domain: ModelType) -> Any:
    """The ``estimateModelUsage`` RPC handler of ``domain``'s namespace."""

    async def estimate(conn: Connection, param: Any) -> Any:
        param = env.require_object(param, "parameter")
        key = env.require_str(param, "modelKey")
        stack = env.require_config_stack(param, "loadConfigStack")
        device = placement(conn.state, requested_device(param))
        spec = conn.state.spec_for_load(key, domain)
        fields = env.flatten_stack(stack)
        context = fields.get(f"{domain}.load.contextLength")
        if isinstance(context, bool) or not isinstance(context, int) or context < 1:
            if context is not None:
                raise InvalidParameter(f"{domain}.load.contextLength: expected a positive int")
            context = spec.default_context_length
        ratio = _offload_ratio(fields.get(f"{domain}.load.llama.acceleration.offloadRatio"))
        model_bytes = spec.size_bytes
        context_bytes = context * CONTEXT_BYTES_PER_TOKEN
        total = model_bytes + context_bytes
        return {
            "memory": {
                "confidence": "high" if spec.format == "gguf" else "low",
                "modelVramBytes": round(model_bytes * ratio),
                "contextVramBytes": round(context_bytes * ratio),
                "totalVramBytes": round(model_bytes * ratio) + round(context_bytes * ratio),
                "modelBytes": model_bytes,
                "contextBytes": context_bytes,
                "totalBytes": total,
            },
            "passesGuardrails": total <= conn.state.hub.memory_of(device),
        }

    return estimate

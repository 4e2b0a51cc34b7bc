"""Load configs for LLMs and embedding models (PROTOCOL.md §5.6), same API as PredictionConfig."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import msgspec

from .._errors import LMStudioConfigError
from . import _kvmap as m
from .kv import KVConfig, KVField

__all__ = [
    "EmbeddingLoadConfig",
    "GPUSetting",
    "GPUSplitStrategy",
    "LLMLoadConfig",
    "LlamaCacheQuantizationType",
]

GPUSplitStrategy = Literal["evenly", "favorMainGpu"]
"""How layers are spread across several GPUs."""

LlamaCacheQuantizationType = Literal["f32", "f16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]
"""llama.cpp KV cache quantization types."""


class GPUSetting(
    msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True, repr_omit_defaults=True
):
    """GPU offload: ``ratio`` (0 to 1, ``"max"`` or ``"off"``) and multi-GPU placement."""

    ratio: float | Literal["max", "off"] | None = None
    main_gpu: int | None = None
    split_strategy: GPUSplitStrategy | None = None
    disabled_gpus: list[int] | None = None


_gpu_struct = m.struct_value(
    GPUSetting, "{'ratio'?: 0-1|'max'|'off', 'main_gpu'?, 'split_strategy'?, 'disabled_gpus'?}"
)
_ratio = m.number(0, 1)
_strategy = m.one_of(("evenly", "favorMainGpu"))
_main_gpu = m.integer(0)


def _gpu(name: str, value: Any) -> Any:
    gpu: GPUSetting = _gpu_struct(name, value)
    if gpu.ratio is not None and gpu.ratio not in ("max", "off"):
        _ratio(f"{name}.ratio", gpu.ratio)
    if gpu.split_strategy is not None:
        _strategy(f"{name}.split_strategy", gpu.split_strategy)
    if gpu.main_gpu is not None:
        _main_gpu(f"{name}.main_gpu", gpu.main_gpu)
    if gpu.disabled_gpus is not None:
        gpu.disabled_gpus = m.int_list(f"{name}.disabled_gpus", gpu.disabled_gpus)
    return gpu


def _ratio_to_wire(gpu: GPUSetting) -> Any:
    return m.not_set() if gpu.ratio is None else gpu.ratio


def _ratio_from_wire(wire: Any, current: GPUSetting | None) -> GPUSetting:
    return msgspec.structs.replace(current or GPUSetting(), ratio=wire)


def _split_to_wire(gpu: GPUSetting) -> Any:
    # Like the 2.0 TypeScript client: no split config unless there is a placement to express,
    # so LM Studio's automatic fit stays free to place the model.
    if gpu.main_gpu is None and gpu.split_strategy is None and not gpu.disabled_gpus:
        return m.not_set()
    # A main GPU without a strategy can only mean "favour it".
    favor = gpu.split_strategy == "favorMainGpu" or (
        gpu.split_strategy is None and gpu.main_gpu is not None
    )
    return {
        "strategy": "priorityOrder" if favor else "evenly",
        "disabledGpus": list(gpu.disabled_gpus or []),
        "priority": [gpu.main_gpu] if favor and gpu.main_gpu is not None else [],
        "customRatio": [],
    }


def _split_from_wire(wire: Any, current: GPUSetting | None) -> GPUSetting | None:
    if not isinstance(wire, Mapping):
        return current
    changes: dict[str, Any] = {}
    if wire.get("disabledGpus"):
        changes["disabled_gpus"] = list(wire["disabledGpus"])
    priority = wire.get("priority")
    if wire.get("strategy") == "evenly":
        changes["split_strategy"] = "evenly"
    elif (
        wire.get("strategy") == "priorityOrder"
        and isinstance(priority, list)
        and len(priority) == 1
    ):
        changes["split_strategy"] = "favorMainGpu"
        changes["main_gpu"] = priority[0]
    # "custom" / "tensor" splits have no typed form; they stay visible in the raw config.
    if not changes:
        return current
    return msgspec.structs.replace(current or GPUSetting(), **changes)


def _gpu_rows(ratio_key: str) -> tuple[m.Option, ...]:
    return (
        m.Option("gpu", ratio_key, _gpu, encode=_ratio_to_wire, decode=_ratio_from_wire),
        m.Option(
            "gpu", "load.gpuSplitConfig", _gpu, encode=_split_to_wire, decode=_split_from_wire
        ),
    )


_L = "llm.load."
_LL = "llm.load.llama."
_E = "embedding.load."
_EL = "embedding.load.llama."
_CACHE_TYPES = ("f32", "f16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")

# LM Studio 2.0 fits context and GPU offload to the machine by itself ("auto fit"), one switch
# per engine. Setting any of these by hand is a request for that exact setup, so the 2.0 client
# switches automatic fitting off for it.
_AUTO_FIT_KEYS = (_LL + "autoFit", _L + "mlx.autoFit", _L + "yuzu.autoFit")
_MANUAL_FIT_OPTIONS = "context_length, gpu (ratio, main_gpu, split_strategy), gpu_strict_vram_cap"

_LLM_TABLE = m.Table(
    "LLM load config",
    (
        *(m.Option("auto_fit", key, m.boolean) for key in _AUTO_FIT_KEYS),
        m.Option("context_length", _L + "contextLength", m.integer(1)),
        *_gpu_rows(_LL + "acceleration.offloadRatio"),
        m.Option("gpu_strict_vram_cap", "load.gpuStrictVramCap", m.boolean),
        m.Option(
            "offload_kv_cache_to_gpu",
            _L + "offloadKVCacheToGpu",
            m.boolean,
            aliases=("offloadKVCacheToGpu",),
        ),
        m.Option("flash_attention", _LL + "flashAttention", m.boolean),
        m.Option("seed", _L + "seed", m.integer(-1, allow_false=True), True, -1),
        m.Option("eval_batch_size", _LL + "evalBatchSize", m.integer(1)),
        m.Option(
            "rope_frequency_base", _LL + "ropeFrequencyBase", m.number(0, allow_false=True), True, 0
        ),
        m.Option(
            "rope_frequency_scale",
            _LL + "ropeFrequencyScale",
            m.number(0, allow_false=True),
            True,
            0,
        ),
        m.Option("keep_model_in_memory", _LL + "keepModelInMemory", m.boolean),
        m.Option("try_mmap", _LL + "tryMmap", m.boolean),
        m.Option(
            "use_fp16_for_kv_cache",
            _LL + "useFp16ForKVCache",
            m.boolean,
            aliases=("useFp16ForKVCache",),
        ),
        m.Option("num_experts", _L + "numExperts", m.integer(0)),
        m.Option("max_parallel_predictions", _L + "numParallelSessions", m.integer(1)),
        m.Option(
            "llama_k_cache_quantization_type",
            _LL + "kCacheQuantizationType",
            m.one_of(_CACHE_TYPES, allow_false=True),
            True,
            "f16",
        ),
        m.Option(
            "llama_v_cache_quantization_type",
            _LL + "vCacheQuantizationType",
            m.one_of(_CACHE_TYPES, allow_false=True),
            True,
            "f16",
        ),
    ),
)

_EMBEDDING_TABLE = m.Table(
    "embedding load config",
    (
        m.Option("context_length", _E + "contextLength", m.integer(1)),
        *_gpu_rows(_EL + "acceleration.offloadRatio"),
        m.Option(
            "rope_frequency_base", _EL + "ropeFrequencyBase", m.number(0, allow_false=True), True, 0
        ),
        m.Option(
            "rope_frequency_scale",
            _EL + "ropeFrequencyScale",
            m.number(0, allow_false=True),
            True,
            0,
        ),
        m.Option("keep_model_in_memory", _EL + "keepModelInMemory", m.boolean),
        m.Option("try_mmap", _EL + "tryMmap", m.boolean),
    ),
)

C = TypeVar("C", "LLMLoadConfig", "EmbeddingLoadConfig")


def _from_value(cls: type[C], table: m.Table, value: object) -> C:
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        return cls(**table.attrs_from_mapping(value))
    raise LMStudioConfigError(
        f"A {table.what} must be a {cls.__name__} or a dict, not {type(value).__name__}."
    )


class LLMLoadConfig(msgspec.Struct, kw_only=True, omit_defaults=True, repr_omit_defaults=True):
    """Options for loading an LLM; ``None`` leaves the server's setting alone.

    ``auto_fit``: LM Studio chooses context length and GPU offload to fit the machine. Setting
    ``context_length``, ``gpu`` placement (``ratio``, ``main_gpu``, ``split_strategy``) or
    ``gpu_strict_vram_cap`` (typed, or the same keys through ``raw``) switches it off for this
    load, as the TypeScript SDK 2.0 does; ``auto_fit=True`` together with one of those raises
    :class:`LMStudioConfigError`, at construction and again when the config is sent (so an
    attribute assigned later obeys the same rule). ``max_parallel_predictions`` is
    how many predictions the instance serves at once.
    """

    auto_fit: bool | None = None
    context_length: int | None = None
    gpu: GPUSetting | None = None
    gpu_strict_vram_cap: bool | None = None
    offload_kv_cache_to_gpu: bool | None = None
    flash_attention: bool | None = None
    seed: int | Literal[False] | None = None
    eval_batch_size: int | None = None
    rope_frequency_base: float | Literal[False] | None = None
    rope_frequency_scale: float | Literal[False] | None = None
    keep_model_in_memory: bool | None = None
    try_mmap: bool | None = None
    use_fp16_for_kv_cache: bool | None = None
    num_experts: int | None = None
    max_parallel_predictions: int | None = None
    llama_k_cache_quantization_type: LlamaCacheQuantizationType | Literal[False] | None = None
    llama_v_cache_quantization_type: LlamaCacheQuantizationType | Literal[False] | None = None
    raw: KVConfig | dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _LLM_TABLE.validate_all(self)
        self._auto_fit_switched_off()

    def _auto_fit_switched_off(self) -> bool:
        """Whether to send ``autoFit: false`` for every engine: a manual context, placement or
        memory setting is made (typed or through ``raw``) and neither ``auto_fit`` nor ``raw``
        says what automatic fitting should do.

        Raises :class:`LMStudioConfigError` for ``auto_fit=True`` with such a setting. Decided
        from the current attributes, so a setting assigned after construction counts too.
        """
        raw_attrs = {} if self.raw is None else _LLM_TABLE.attrs_from_kv(self._raw_config())
        auto_fit = self.auto_fit if self.auto_fit is not None else raw_attrs.get("auto_fit")
        manual = _is_manual_fit(self.context_length, self.gpu, self.gpu_strict_vram_cap) or (
            _is_manual_fit(
                raw_attrs.get("context_length"),
                raw_attrs.get("gpu"),
                raw_attrs.get("gpu_strict_vram_cap"),
            )
        )
        if auto_fit is True and manual:
            raise LMStudioConfigError(
                "auto_fit=True cannot be combined with manual context, placement or memory "
                f"settings ({_MANUAL_FIT_OPTIONS}, also when set through raw); drop auto_fit to "
                "use your settings, or drop them to let LM Studio fit the model."
            )
        return manual and auto_fit is None

    def _raw_config(self) -> KVConfig:
        raw = self.raw
        return raw if isinstance(raw, KVConfig) else m.to_kvconfig(_LLM_TABLE.what, raw)

    @classmethod
    def from_value(cls, value: LLMLoadConfig | Mapping[str, Any] | None) -> LLMLoadConfig:
        """Return ``value`` as a config; dicts may use snake_case or camelCase names."""
        return _from_value(cls, _LLM_TABLE, value)

    @classmethod
    def from_kv(cls, config: KVConfig) -> LLMLoadConfig:
        """Read the typed options out of a server KV config (unknown keys are ignored).

        A loaded instance reports both its automatic fit switch and the context length it got,
        so ``auto_fit`` is only kept when the config names no manual setting.
        """
        attrs = _LLM_TABLE.attrs_from_kv(config)
        config_obj = cls(**{k: v for k, v in attrs.items() if k != "auto_fit"})
        manual = _is_manual_fit(
            config_obj.context_length, config_obj.gpu, config_obj.gpu_strict_vram_cap
        )
        if "auto_fit" in attrs and not (attrs["auto_fit"] and manual):
            config_obj.auto_fit = attrs["auto_fit"]
        return config_obj

    def to_kv_fields(self) -> list[KVField]:
        """Translate to KV fields (``raw`` first, typed options override the same keys).

        Checked again here, so attributes assigned after construction obey the same rules:
        a manual context, placement or memory setting (typed or in ``raw``) sends
        ``autoFit: false`` for every engine unless ``auto_fit`` says otherwise, and
        ``auto_fit=True`` with one raises :class:`LMStudioConfigError`.
        """
        _LLM_TABLE.validate_all(self)
        if self._auto_fit_switched_off():
            return _LLM_TABLE.to_kv(msgspec.structs.replace(self, auto_fit=False))
        return _LLM_TABLE.to_kv(self)


def _is_manual_fit(
    context_length: object, gpu: GPUSetting | None, gpu_strict_vram_cap: object
) -> bool:
    """Whether these settings ask for an exact setup, which switches automatic fitting off."""
    return (
        context_length is not None
        or gpu_strict_vram_cap is not None
        or (
            gpu is not None
            and (
                gpu.ratio is not None or gpu.main_gpu is not None or gpu.split_strategy is not None
            )
        )
    )


class EmbeddingLoadConfig(
    msgspec.Struct, kw_only=True, omit_defaults=True, repr_omit_defaults=True
):
    """Options for loading an embedding model; ``None`` leaves the server's setting alone."""

    context_length: int | None = None
    gpu: GPUSetting | None = None
    rope_frequency_base: float | Literal[False] | None = None
    rope_frequency_scale: float | Literal[False] | None = None
    keep_model_in_memory: bool | None = None
    try_mmap: bool | None = None
    raw: KVConfig | dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _EMBEDDING_TABLE.validate_all(self)

    @classmethod
    def from_value(
        cls, value: EmbeddingLoadConfig | Mapping[str, Any] | None
    ) -> EmbeddingLoadConfig:
        """Return ``value`` as a config; dicts may use snake_case or camelCase names."""
        return _from_value(cls, _EMBEDDING_TABLE, value)

    @classmethod
    def from_kv(cls, config: KVConfig) -> EmbeddingLoadConfig:
        """Read the typed options out of a server KV config (unknown keys are ignored)."""
        return cls(**_EMBEDDING_TABLE.attrs_from_kv(config))

    def to_kv_fields(self) -> list[KVField]:
        """Translate to KV fields (``raw`` first, typed options override the same keys)."""
        return _EMBEDDING_TABLE.to_kv(self)

"""Downloaded models (the catalog) and loaded instances, as LM Studio describes them.

The wire dictionaries built here carry the newest ("HEAD") superset of fields so that both the
newest JS client and older Python clients accept them (PROTOCOL.md §5.5 and §6 item 16).
"""

from __future__ import annotations

import os
import pathlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NamedTuple

import msgspec

__all__ = [
    "CatalogFile",
    "Instance",
    "ModelSpec",
    "default_catalog",
    "read_catalog",
    "spec_rank",
]

ModelType = Literal["llm", "embedding"]


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A downloaded model the simulator knows about.

    Only ``model_key`` is required; every other field has a plausible default. ``reasoning``
    makes the default reply of an LLM start with a ``<think>`` segment.
    """

    model_key: str
    type: ModelType = "llm"
    display_name: str | None = None
    publisher: str = "lmstudio-community"
    path: str | None = None
    size_bytes: int = 1_000_000_000
    architecture: str = "llama"
    params_string: str | None = "1B"
    quantization_name: str | None = "Q4_K_M"
    quantization_bits: int = 4
    format: str = "gguf"
    vision: bool = False
    trained_for_tool_use: bool = False
    reasoning: bool = False
    max_context_length: int = 32768
    default_context_length: int = 4096
    embedding_dimensions: int = 768
    # The variant keys (``key@quantization``) of a model downloaded in several variants, and
    # the one a load of ``model_key`` uses; empty / None for a model without variants.
    variants: tuple[str, ...] = ()
    selected_variant: str | None = None

    @property
    def wire_path(self) -> str:
        """The model's relative path (``publisher/repo/file``)."""
        if self.path is not None:
            return self.path
        return f"{self.publisher}/{self.model_key}-GGUF/{self.model_key}.gguf"

    @property
    def wire_display_name(self) -> str:
        """The display name, derived from the key when not given."""
        return self.display_name or self.model_key

    def info(self) -> dict[str, Any]:
        """``LLMInfo``/``EmbeddingModelInfo`` as sent by ``listDownloadedModels``."""
        info: dict[str, Any] = {
            "type": self.type,
            "modelKey": self.model_key,
            "format": self.format,
            "displayName": self.wire_display_name,
            "publisher": self.publisher,
            "path": self.wire_path,
            "sizeBytes": self.size_bytes,
            "indexedModelIdentifier": self.wire_path,
            "deviceIdentifier": None,
            "architecture": self.architecture,
        }
        if self.params_string is not None:
            info["paramsString"] = self.params_string
        if self.quantization_name is not None:
            info["quantization"] = {"name": self.quantization_name, "bits": self.quantization_bits}
        if self.type == "llm":
            info["vision"] = self.vision
            info["trainedForToolUse"] = self.trained_for_tool_use
        info["maxContextLength"] = self.max_context_length
        if self.variants:
            info["variants"] = list(self.variants)
            info["selectedVariant"] = self.selected_variant
        return info


def spec_rank(spec: ModelSpec, name: str) -> int | None:
    """How well ``name`` designates the downloaded model ``spec``; ``None`` if not at all.

    LM Studio compares names case-insensitively, and only as whole names, never as arbitrary
    character prefixes (``"qwen/qwen3-4b"`` does not name ``qwen/qwen3-4b-thinking-2507``):

    * ``0``: the model key itself;
    * ``1``: the whole path (``publisher/repo/file``);
    * ``2``: the repository, ``publisher/repo``, so any file of it
      (``ZiangWu/MobileVLM_V2-1.7B-GGUF``);
    * ``3``: the repository named without the format and quantization suffixes Hugging Face
      repository names carry (``hugging-quants/llama-3.2-1b-instruct`` for
      ``hugging-quants/Llama-3.2-1B-Instruct-Q8_0-GGUF``), as the official SDK's own suite,
      written against the app, names its models.

    Lower ranks win: among several matches the best rank is the one meant.
    """
    wanted = name.casefold()
    if not wanted:
        return None
    if spec.model_key.casefold() == wanted:
        return 0
    path = spec.wire_path.casefold()
    if path == wanted:
        return 1
    segments = path.split("/")
    if len(segments) < 3:
        return None
    publisher, repo = segments[0], segments[1]
    if wanted == f"{publisher}/{repo}":
        return 2
    if wanted == f"{publisher}/{_bare_repo(repo)}":
        return 3
    return None


# Hugging Face repository names end in the format, often after the quantization:
# "Llama-3.2-1B-Instruct-Q8_0-GGUF", "nomic-embed-text-v1.5-GGUF", "Qwen3-4B-MLX-4bit".
_FORMAT_SUFFIX = re.compile(r"-(?:gguf|mlx)$")
_QUANTIZATION_SUFFIX = re.compile(r"-(?:i?q\d\w*|b?f16|f32|\d+bit)$")


def _bare_repo(repo: str) -> str:
    """``repo`` (casefolded) without its format (``-GGUF``) and quantization (``-Q8_0``)
    suffixes, in either order."""
    for _ in range(2):
        repo = _QUANTIZATION_SUFFIX.sub("", _FORMAT_SUFFIX.sub("", repo))
    return repo


@dataclass(kw_only=True)
class Instance:
    """A loaded model instance (server-wide state, shared by every connection)."""

    spec: ModelSpec
    identifier: str
    instance_reference: str
    context_length: int
    ttl_ms: int | None = None
    load_fields: list[dict[str, Any]] = field(default_factory=list)
    last_used_time: float | None = None
    device_identifier: str | None = None  # an LM Link peer; None = this machine
    jit: bool = False
    idle_since: float = field(default_factory=time.monotonic)
    """When the instance was loaded or last used (``time.monotonic()`` seconds)."""
    unloaded: bool = False
    """Set once the instance is unloaded; work still running on it then fails."""
    _on_unload: list[Callable[[], None]] = field(default_factory=list, init=False, repr=False)

    def when_unloaded(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when the instance is unloaded; returns the undo function."""
        self._on_unload.append(callback)
        return lambda: self._on_unload.remove(callback)

    def mark_unloaded(self) -> None:
        """The instance is gone: wake the work waiting on it (it checks :attr:`unloaded`)."""
        self.unloaded = True
        for callback in list(self._on_unload):
            callback()

    def touch(self) -> None:
        """Record use, as LM Studio does for TTL bookkeeping."""
        self.last_used_time = time.time() * 1000.0
        self.idle_since = time.monotonic()

    def idle_expired(self, now: float) -> bool:
        """True once the instance has been idle for longer than its TTL (never without one)."""
        return self.ttl_ms is not None and now - self.idle_since > self.ttl_ms / 1000.0

    def info(self) -> dict[str, Any]:
        """``LLMInstanceInfo``/``EmbeddingModelInstanceInfo``."""
        info = self.spec.info()
        info["identifier"] = self.identifier
        info["instanceReference"] = self.instance_reference
        info["deviceIdentifier"] = self.device_identifier
        info["ttlMs"] = self.ttl_ms
        info["lastUsedTime"] = None if self.last_used_time is None else int(self.last_used_time)
        info["contextLength"] = self.context_length
        return info

    def load_config(self) -> dict[str, Any]:
        """The effective (flattened) load ``KVConfig``."""
        prefix = "llm.load" if self.spec.type == "llm" else "embedding.load"
        fields: dict[str, Any] = {
            f"{prefix}.contextLength": self.context_length,
            f"{prefix}.llama.acceleration.offloadRatio": 1,
            f"{prefix}.llama.keepModelInMemory": True,
            f"{prefix}.llama.tryMmap": True,
        }
        if self.spec.type == "llm":
            fields["llm.load.llama.flashAttention"] = False
            fields["llm.load.llama.evalBatchSize"] = 512
        for entry in self.load_fields:
            fields[entry["key"]] = entry["value"]
        # The instance's actual context length wins over whatever the request said.
        fields[f"{prefix}.contextLength"] = self.context_length
        return {"fields": [{"key": k, "value": v} for k, v in fields.items()]}


def default_catalog() -> list[ModelSpec]:
    """The models a fresh simulator reports as downloaded.

    ``qwen2.5-7b-instruct`` (default LLM, tool use), ``google/gemma-3-4b`` (vision, tool use),
    ``qwen3-4b-thinking`` (replies start with a reasoning segment) and
    ``text-embedding-nomic-embed-text-v1.5`` (768-dimensional embeddings).
    """
    return [
        ModelSpec(
            model_key="qwen2.5-7b-instruct",
            display_name="Qwen2.5 7B Instruct",
            publisher="lmstudio-community",
            path="lmstudio-community/Qwen2.5-7B-Instruct-GGUF/Qwen2.5-7B-Instruct-Q4_K_M.gguf",
            size_bytes=4_683_073_952,
            architecture="qwen2",
            params_string="7B",
            trained_for_tool_use=True,
            max_context_length=32768,
            default_context_length=4096,
        ),
        ModelSpec(
            model_key="google/gemma-3-4b",
            display_name="Gemma 3 4B",
            publisher="lmstudio-community",
            path="lmstudio-community/gemma-3-4b-it-GGUF/gemma-3-4b-it-Q4_K_M.gguf",
            size_bytes=3_341_081_024,
            architecture="gemma3",
            params_string="4B",
            vision=True,
            trained_for_tool_use=True,
            max_context_length=131072,
            default_context_length=4096,
        ),
        ModelSpec(
            model_key="qwen3-4b-thinking",
            display_name="Qwen3 4B Thinking 2507",
            publisher="lmstudio-community",
            path="lmstudio-community/Qwen3-4B-Thinking-2507-GGUF/Qwen3-4B-Thinking-2507-Q4_K_M.gguf",
            size_bytes=2_497_280_256,
            architecture="qwen3",
            params_string="4B",
            trained_for_tool_use=True,
            reasoning=True,
            max_context_length=262144,
            default_context_length=4096,
        ),
        ModelSpec(
            model_key="text-embedding-nomic-embed-text-v1.5",
            type="embedding",
            display_name="Nomic Embed Text v1.5",
            publisher="nomic-ai",
            path="nomic-ai/nomic-embed-text-v1.5-GGUF/nomic-embed-text-v1.5.Q4_K_M.gguf",
            size_bytes=84_106_624,
            architecture="nomic-bert",
            params_string=None,
            max_context_length=2048,
            default_context_length=2048,
            embedding_dimensions=768,
        ),
    ]


# ---- catalogue files (``simulate --catalog FILE``) -----------------------------------------

_Positive = Annotated[int, msgspec.Meta(gt=0)]


class _CatalogEntry(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    # Field names are ModelSpec's in LM Studio's camelCase; UNSET keeps ModelSpec's default.
    model_key: Annotated[str, msgspec.Meta(min_length=1)]
    type: ModelType | msgspec.UnsetType = msgspec.UNSET
    display_name: str | msgspec.UnsetType = msgspec.UNSET
    publisher: str | msgspec.UnsetType = msgspec.UNSET
    path: Annotated[str, msgspec.Meta(min_length=1)] | msgspec.UnsetType = msgspec.UNSET
    size_bytes: _Positive | msgspec.UnsetType = msgspec.UNSET
    architecture: str | msgspec.UnsetType = msgspec.UNSET
    params_string: str | msgspec.UnsetType | None = msgspec.UNSET
    quantization_name: str | msgspec.UnsetType | None = msgspec.UNSET
    quantization_bits: _Positive | msgspec.UnsetType = msgspec.UNSET
    format: str | msgspec.UnsetType = msgspec.UNSET
    vision: bool | msgspec.UnsetType = msgspec.UNSET
    trained_for_tool_use: bool | msgspec.UnsetType = msgspec.UNSET
    reasoning: bool | msgspec.UnsetType = msgspec.UNSET
    max_context_length: _Positive | msgspec.UnsetType = msgspec.UNSET
    default_context_length: _Positive | msgspec.UnsetType = msgspec.UNSET
    embedding_dimensions: _Positive | msgspec.UnsetType = msgspec.UNSET
    loaded: bool = False

    def spec(self) -> ModelSpec:
        given = {
            name: value
            for name in self.__struct_fields__
            if name != "loaded" and (value := getattr(self, name)) is not msgspec.UNSET
        }
        return ModelSpec(**given)


class _CatalogFile(msgspec.Struct, forbid_unknown_fields=True):
    models: list[_CatalogEntry]


class CatalogFile(NamedTuple):
    """A catalogue read by :func:`read_catalog`: pass both to ``Simulator(catalog=, loaded=)``."""

    models: list[ModelSpec]
    """The downloaded models, in file order."""
    loaded: list[str]
    """Keys of the models marked ``"loaded": true``, loaded at start under their key."""


def read_catalog(path: str | os.PathLike[str]) -> CatalogFile:
    """Read a JSON catalogue of downloaded models for the simulator.

    The file is ``{"models": [...]}``; each model is an object with ``modelKey`` (required)
    and any of ``type`` (``"llm"``/``"embedding"``), ``path`` (``publisher/repo/file``, what
    ``publisher/repo`` names resolve against; unique), ``publisher``, ``displayName``,
    ``vision``, ``trainedForToolUse``, ``reasoning``, ``maxContextLength``,
    ``defaultContextLength``, ``embeddingDimensions``, ``sizeBytes``, ``architecture``,
    ``paramsString``, ``quantizationName``, ``quantizationBits``, ``format`` (the fields of
    :class:`ModelSpec`, same defaults) and ``loaded`` (default ``false``).

    Raises ``ValueError`` naming the file and the fault (unreadable file, invalid JSON, an
    unknown or mistyped field with its JSON path, a duplicated key, two models with one path,
    a default context length above the maximum).
    """
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read catalogue {str(path)!r}: {exc.strerror or exc}") from None
    try:
        parsed = msgspec.json.decode(data, type=_CatalogFile)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid catalogue {str(path)!r}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ValueError(f"catalogue {str(path)!r} is not valid JSON: {exc}") from None
    specs: list[ModelSpec] = []
    seen: set[str] = set()
    paths: dict[str, int] = {}
    for index, entry in enumerate(parsed.models):
        where = f"invalid catalogue {str(path)!r}: models[{index}]"
        spec = entry.spec()
        if spec.model_key.casefold() in seen:
            raise ValueError(f"{where}: modelKey {spec.model_key!r} appears twice")
        # One file is one downloaded model: a second entry for it could never be resolved.
        other = paths.setdefault(spec.wire_path.casefold(), index)
        if other != index:
            raise ValueError(
                f"{where}: path {spec.wire_path!r} is already models[{other}]'s; "
                "give each model its own file path"
            )
        if spec.default_context_length > spec.max_context_length:
            raise ValueError(
                f"{where}: defaultContextLength {spec.default_context_length} exceeds "
                f"maxContextLength {spec.max_context_length}"
            )
        seen.add(spec.model_key.casefold())
        specs.append(spec)
    loaded = [entry.model_key for entry in parsed.models if entry.loaded]
    return CatalogFile(specs, loaded)

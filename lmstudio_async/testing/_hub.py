"""What the simulated LM Studio can download, the downloads it ran, and its LM Link devices.

Plain bookkeeping, no I/O: :mod:`._repository` serves it over ``/repository``. A download
adds a :class:`ModelSpec` to the server's downloaded models, so it can be loaded right after.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from ._catalog import ModelSpec, ModelType

__all__ = [
    "DownloadRecord",
    "DownloadableModel",
    "Hub",
    "LinkedDevice",
    "default_downloadable_models",
    "default_linked_devices",
]

_GIB = 1024**3
# The simulated machine: models up to this size run fully on its GPU, up to twice it partly.
_GPU_BYTES = 8 * _GIB


@dataclass(frozen=True, kw_only=True)
class DownloadableModel:
    """A model the simulated hub offers: its search ``name`` (``publisher/model``), where it
    comes from (``"catalog"`` or ``"hf"``), and one download option per quantization with its
    size in bytes (the first is LM Studio's recommendation)."""

    name: str
    source: Literal["catalog", "hf"] = "catalog"
    quantizations: tuple[tuple[str, int], ...] = (("Q4_K_M", 1_000_000_000),)
    type: ModelType = "llm"
    staff_pick: bool = False

    def download_identifier(self, quantization: str) -> str:
        """The option's ``downloadIdentifier`` (``name@quantization``)."""
        return f"{self.name}@{quantization}"

    def model_key(self) -> str:
        """The key the model has once downloaded (LM Studio's ``defaultIdentifier``): the
        catalog name, or a Hugging Face repository's name without its format suffix."""
        if self.source == "catalog":
            return self.name.lower()
        return self.name.rsplit("/", 1)[-1].lower().removesuffix("-gguf")

    def spec(self, quantization: str, size: int) -> ModelSpec:
        """The downloaded model as the server lists it afterwards."""
        publisher, _, repo = self.name.partition("/")
        return ModelSpec(
            model_key=self.model_key(),
            type=self.type,
            display_name=repo or self.name,
            publisher=publisher or "lmstudio-community",
            path=f"{self.name}/{repo or self.name}-{quantization}.gguf",
            size_bytes=size,
            quantization_name=quantization,
            quantization_bits=_quantization_bits(quantization),
        )

    def variant_key(self, quantization: str) -> str:
        """The key of one downloaded variant, as LM Studio names it (``key@q4_k_m``)."""
        return f"{self.model_key()}@{quantization.lower()}"


def _quantization_bits(quantization: str) -> int:
    """Bits per weight of a llama.cpp quantization name (``Q8_0``: 8, ``F16``: 16)."""
    match = re.match(r"(?:I?Q|F|BF)(\d+)", quantization.upper())
    return int(match.group(1)) if match else 4


def fit_estimation(size: int) -> str:
    """How the simulated machine would run a model of ``size`` bytes."""
    if size <= _GPU_BYTES:
        return "fullGPUOffload"
    if size <= 2 * _GPU_BYTES:
        return "partialGPUOffload"
    if size <= 4 * _GPU_BYTES:
        return "fitWithoutGPU"
    return "willNotFit"


@dataclass
class DownloadRecord:
    """One ``downloadModel`` channel: what it downloaded and how it ended.

    ``status`` is ``"running"``, ``"finished"``, ``"cancelled"`` (the client sent ``cancel``)
    or ``"disconnected"`` (the socket went away mid-download).
    """

    download_identifier: str
    status: str = "running"
    progress_sent: int = 0
    cancel_received: bool = False


@dataclass(frozen=True)
class LinkedDevice:
    """A machine in the simulated LM Link; the local one is listed first.

    ``memory_bytes`` is what resource estimates for loads on it measure against.
    """

    device_identifier: str
    device_name: str
    connected: bool = True
    memory_bytes: int = 16 * _GIB


def default_downloadable_models() -> list[DownloadableModel]:
    """The simulated hub: two catalog models (one a staff pick) and two from Hugging Face,
    among them SmolLM2 135M, the small model the official SDK suite searches for."""
    return [
        DownloadableModel(
            name="qwen/qwen3-8b",
            quantizations=(("Q4_K_M", 5_027_784_704), ("Q8_0", 8_709_519_360)),
            staff_pick=True,
        ),
        DownloadableModel(name="google/gemma-3-12b", quantizations=(("Q4_K_M", 8_149_190_912),)),
        DownloadableModel(
            name="bartowski/Llama-3.2-1B-Instruct-GGUF",
            source="hf",
            quantizations=(("Q4_K_M", 807_694_464), ("Q8_0", 1_321_083_168)),
        ),
        DownloadableModel(
            name="lmstudio-community/SmolLM2-135M-Instruct-GGUF",
            source="hf",
            quantizations=(("Q8_0", 144_805_440),),
        ),
    ]


def default_linked_devices() -> list[LinkedDevice]:
    """This machine and one linked peer."""
    return [
        LinkedDevice("sim-device-local", "Simulated workstation"),
        LinkedDevice("sim-device-gpu-box", "Simulated GPU box", memory_bytes=64 * _GIB),
    ]


@dataclass
class Hub:
    """Downloadable models, download pacing and records, and LM Link devices.

    ``download_seconds`` is how long a download takes (progress packets at least every
    0.05 s, and at least ten).
    ``devices[0]`` is the local machine.
    """

    models: list[DownloadableModel] = field(default_factory=default_downloadable_models)
    download_seconds: float = 0.2
    downloads: list[DownloadRecord] = field(default_factory=list)
    devices: list[LinkedDevice] = field(default_factory=default_linked_devices)
    preferred_device: str | None = None
    lm_link_disabled: bool = False

    def search(self, term: str) -> list[DownloadableModel]:
        """Models whose name contains every word of ``term`` (case-insensitive)."""
        words = term.lower().split()
        return [m for m in self.models if all(w in m.name.lower() for w in words)]

    def find(self, source: str, identifier: str) -> DownloadableModel | None:
        return next((m for m in self.models if m.source == source and m.name == identifier), None)

    def option(self, download_identifier: str) -> tuple[DownloadableModel, str, int] | None:
        for model in self.models:
            for quantization, size in model.quantizations:
                if model.download_identifier(quantization) == download_identifier:
                    return model, quantization, size
        return None

    def device(self, identifier: str) -> LinkedDevice | None:
        return next((d for d in self.devices if d.device_identifier == identifier), None)

    def peer_connected(self, device: LinkedDevice) -> bool:
        """A peer is reachable only while it is up and LM Link is not switched off here."""
        return device.connected and not self.lm_link_disabled

    def memory_of(self, placed: str | None) -> int:
        """The memory of the device a load is placed on (``None``: this machine)."""
        device = self.devices[0] if placed is None else self.device(placed)
        return self.devices[0].memory_bytes if device is None else device.memory_bytes

    def on_device(self, placed: str | None, queried: str | None) -> bool:
        """Whether an instance placed on ``placed`` (``None``: here) is on ``queried``
        (``None`` or this machine's identifier: here)."""
        if queried == self.devices[0].device_identifier:
            queried = None
        return placed == queried

    def placement(self, requested: str | None) -> str | None:
        """Where a load asked for ``requested`` runs: ``None`` for this machine (as model infos
        say), else the peer's identifier. Without a request, the preferred device (see
        ``lmLinkSetPreferredDevice``) if any. ``LookupError`` (a message for the user) for a
        device LM Link does not know or cannot reach."""
        if requested is None:
            requested = self.preferred_device
        if requested is None or requested == self.devices[0].device_identifier:
            return None
        device = self.device(requested)
        if device is None:
            known = ", ".join(d.device_identifier for d in self.devices)
            raise LookupError(f'No LM Link device "{requested}" (devices: {known})')
        if not self.peer_connected(device):
            raise LookupError(f'LM Link device "{requested}" is not connected')
        return device.device_identifier

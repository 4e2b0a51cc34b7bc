"""KV configs: the flat ``{key, value}`` lists LM Studio uses for every load / prediction setting.

Keys are full dotted paths such as ``llm.prediction.temperature``. A :class:`KVConfigStack` is
an ordered list of named layers; later layers override earlier ones (PROTOCOL.md §3.3, §5.6).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import msgspec

__all__ = [
    "KVConfig",
    "KVConfigLayer",
    "KVConfigStack",
    "KVField",
    "LayerName",
    "single_layer_stack",
]

LayerName = Literal[
    "currentlyEditing",
    "currentlyLoaded",
    "apiOverride",
    "conversationSpecific",
    "conversationGlobal",
    "preset",
    "serverSession",
    "httpServerRequestOverride",
    "completeModeFormatting",
    "instance",
    "userModelDefault",
    "virtualModel",
    "modelDefault",
    "hardware",
]
"""The closed set of config layer names the server accepts (any other name makes it hang)."""


class KVField(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    """One setting: a dotted ``key`` and its JSON ``value``."""

    key: str
    value: Any


class KVConfig(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    """A flat list of settings, as sent in config layers and returned with results."""

    fields: list[KVField]

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value of the last field named ``key``, or ``default``."""
        for field in reversed(self.fields):
            if field.key == key:
                return field.value
        return default

    def to_dict(self) -> dict[str, Any]:
        """Return ``{key: value}`` (the last field wins when a key repeats)."""
        return {field.key: field.value for field in self.fields}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> KVConfig:
        """Build a config from a flat ``{dotted key: value}`` mapping."""
        return cls(fields=[KVField(key=k, value=v) for k, v in values.items()])


class KVConfigLayer(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    """One named layer of a :class:`KVConfigStack`."""

    layer_name: LayerName
    config: KVConfig


class KVConfigStack(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    """Ordered config layers; later layers override earlier ones."""

    layers: list[KVConfigLayer]


def single_layer_stack(
    fields: Iterable[KVField], layer_name: LayerName = "apiOverride"
) -> KVConfigStack:
    """Wrap ``fields`` in a one-layer stack (what clients normally send)."""
    layer = KVConfigLayer(layer_name=layer_name, config=KVConfig(fields=list(fields)))
    return KVConfigStack(layers=[layer])

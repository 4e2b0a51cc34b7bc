"""Lazily imported public names, shared by the package and ``lmstudio_async.testing``.

Names that pull in heavy modules (tool use, the simulator and aiohttp's server side) are
imported on first access, so ``import lmstudio_async`` and a pytest start stay quick.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    namespace: dict[str, Any], lazy: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of the module whose globals are
    ``namespace``: ``lazy`` maps a public name to the (relative) module that defines it."""
    module_name = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = lazy.get(name)
        if module is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, module_name), name)
        namespace[name] = value  # imported once: later lookups are plain globals
        return value

    def __dir__() -> list[str]:
        # The lazily imported names are public too: completion and dir() must list them.
        return sorted(set(namespace) | set(namespace["__all__"]))

    return __getattr__, __dir__

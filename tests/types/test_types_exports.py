"""``lmstudio_async.types`` exports every public name, sorted, each documented."""

from __future__ import annotations

import inspect

import lmstudio_async.types as types_module


def test_all_is_sorted_and_complete() -> None:
    assert types_module.__all__ == sorted(types_module.__all__)
    public = {
        name
        for name, value in vars(types_module).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(types_module.__all__)


def test_public_classes_and_functions_have_docstrings() -> None:
    for name in types_module.__all__:
        value = getattr(types_module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name

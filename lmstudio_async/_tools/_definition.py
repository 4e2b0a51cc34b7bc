"""Tools for ``act()``: a name, a description, a JSON schema for the arguments, and a function.

:meth:`Tool.from_function` derives the schema from the function's signature by building a
msgspec Struct type with one field per parameter; decoding the model's arguments into that
type is also how they are validated.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

import anyio.to_thread
import msgspec

from .._errors import LMStudioToolCallError, LMStudioUsageError
from .._prediction._structured import inline_schema_refs

__all__ = ["Tool", "ToolLike", "to_tools"]

_UNSUPPORTED_KINDS = {
    inspect.Parameter.VAR_POSITIONAL: "*args",
    inspect.Parameter.VAR_KEYWORD: "**kwargs",
    inspect.Parameter.POSITIONAL_ONLY: "positional-only parameters",
}


def _is_async(fn: Callable[..., Any]) -> bool:
    target = fn.func if isinstance(fn, functools.partial) else fn
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        getattr(target, "__call__", None)  # noqa: B004  (callable objects with async __call__)
    )


def _check_object_schema(name: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(parameters, Mapping) or parameters.get("type") != "object":
        raise LMStudioUsageError(
            f"Tool {name!r}: parameters must be a JSON schema of type 'object' "
            f"(e.g. {{'type': 'object', 'properties': {{...}}}}), got {parameters!r:.100}."
        )
    properties = parameters.get("properties", {})
    if not isinstance(properties, Mapping):
        raise LMStudioUsageError(f"Tool {name!r}: parameters['properties'] must be a dict.")
    return dict(parameters)


class Tool:
    """A tool the model may call during :meth:`LLM.act`.

    Build one from a function with :meth:`from_function` (what ``act`` does with plain
    functions), or explicitly from a name, description, a JSON schema of type ``object`` for
    the parameters and an ``implementation`` (sync or async) called with the arguments as
    keyword arguments. Sync implementations run in a worker thread so they cannot stall the
    event loop; async ones run in the ``act`` task group.
    """

    __slots__ = (
        "_arguments_type",
        "_is_async",
        "description",
        "implementation",
        "name",
        "parameters",
    )

    def __init__(
        self,
        name: str,
        description: str,
        parameters: Mapping[str, Any],
        implementation: Callable[..., Any],
        *,
        _arguments_type: type[msgspec.Struct] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise LMStudioUsageError(f"A tool name must be a non-empty string, got {name!r}.")
        if not callable(implementation):
            raise LMStudioUsageError(f"Tool {name!r}: implementation must be callable.")
        self.name = name
        self.description = description
        self.parameters = _check_object_schema(name, parameters)
        self.implementation = implementation
        self._arguments_type = _arguments_type
        self._is_async = _is_async(implementation)

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> Tool:
        """A tool from a function: name from ``__name__``, description from the docstring,
        parameters from the type hints (every parameter needs one msgspec can express;
        parameters with defaults are optional).
        """
        tool_name = name or getattr(fn, "__name__", None)
        if not tool_name or tool_name == "<lambda>":
            raise LMStudioUsageError(
                f"Cannot name a tool after {fn!r}; pass Tool.from_function(fn, name='...')."
            )
        try:
            signature = inspect.signature(fn)
            hints = typing.get_type_hints(fn, include_extras=True)
        except (TypeError, ValueError, NameError) as exc:
            raise LMStudioUsageError(
                f"Cannot read the signature of tool function {tool_name!r}: {exc}."
            ) from exc
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        for parameter in signature.parameters.values():
            where = f"Tool function {tool_name!r}, parameter {parameter.name!r}"
            if parameter.kind in _UNSUPPORTED_KINDS:
                raise LMStudioUsageError(
                    f"{where}: {_UNSUPPORTED_KINDS[parameter.kind]} are not supported; the model "
                    "passes arguments by name."
                )
            if parameter.name not in hints:
                raise LMStudioUsageError(
                    f"{where} has no type annotation; annotate it so its JSON schema is known."
                )
            annotation = hints[parameter.name]
            try:
                msgspec.json.schema(annotation)
            except (TypeError, ValueError) as exc:
                raise LMStudioUsageError(
                    f"{where}: type {annotation!r} cannot be expressed as JSON schema ({exc}). "
                    "Use JSON-like types: str, int, float, bool, list, dict, Literal, Enum, "
                    "msgspec Structs, dataclasses, TypedDicts."
                ) from exc
            if parameter.default is inspect.Parameter.empty:
                fields.append((parameter.name, annotation))
            else:
                fields.append((parameter.name, annotation, parameter.default))
        try:
            arguments_type = msgspec.defstruct(
                f"{tool_name}_arguments", fields, forbid_unknown_fields=True, kw_only=True
            )
            schema = inline_schema_refs(msgspec.json.schema(arguments_type))
        except (TypeError, ValueError) as exc:
            raise LMStudioUsageError(
                f"Cannot build the parameter schema of tool function {tool_name!r}: {exc}."
            ) from exc
        schema.pop("title", None)
        schema.setdefault("properties", {})
        doc = description if description is not None else inspect.getdoc(fn) or ""
        return cls(tool_name, doc, schema, fn, _arguments_type=arguments_type)

    def to_wire(self) -> dict[str, Any]:
        """The ``LLMTool`` sent in ``llm.prediction.tools``."""
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}

    def validate_arguments(self, arguments: Mapping[str, Any] | None) -> dict[str, Any]:
        """The keyword arguments for the implementation, or :class:`LMStudioToolCallError`."""
        arguments = dict(arguments or {})
        if self._arguments_type is None:
            return self._check_against_schema(arguments)
        try:
            decoded = msgspec.convert(arguments, self._arguments_type)
        except msgspec.ValidationError as exc:
            raise LMStudioToolCallError(
                f"Invalid arguments for tool {self.name!r}: {exc}. Arguments given: "
                f"{arguments!r:.200}."
            ) from exc
        return {f: getattr(decoded, f) for f in self._arguments_type.__struct_fields__}

    def _check_against_schema(self, arguments: dict[str, Any]) -> dict[str, Any]:
        # Explicit tools bring their own schema; without a JSON schema validator at runtime,
        # check the parts that decide whether the call can happen at all.
        properties = self.parameters.get("properties", {})
        missing = [k for k in self.parameters.get("required", []) if k not in arguments]
        unknown = (
            [k for k in arguments if k not in properties]
            if self.parameters.get("additionalProperties") is False
            else []
        )
        if missing or unknown:
            raise LMStudioToolCallError(
                f"Invalid arguments for tool {self.name!r}: missing {missing}, unknown {unknown}."
            )
        return arguments

    async def call(self, arguments: dict[str, Any]) -> Any:
        """Run the implementation with validated keyword arguments.

        A sync implementation runs in a worker thread. Cancelling the caller returns at once:
        a thread cannot be interrupted, so it finishes in the background and its result is
        discarded.
        """
        if self._is_async:
            return await self.implementation(**arguments)
        return await anyio.to_thread.run_sync(
            functools.partial(self.implementation, **arguments), abandon_on_cancel=True
        )

    def __repr__(self) -> str:
        params = ", ".join(self.parameters.get("properties", {}))
        return f"<Tool {self.name}({params})>"


ToolLike = Tool | Callable[..., Any]
"""What ``act(tools=...)`` accepts: :class:`Tool` objects or plain functions."""


def to_tools(tools: object) -> list[Tool]:
    """Normalise ``act``'s ``tools`` argument; names must be unique."""
    if isinstance(tools, (Tool, str, bytes, Mapping)) or callable(tools):
        raise LMStudioUsageError(
            "act() takes tools as a list of functions or Tool objects, e.g. tools=[add]."
        )
    try:
        items = list(tools)  # type: ignore[call-overload]
    except TypeError as exc:
        raise LMStudioUsageError(
            f"act() takes tools as a list of functions or Tool objects, got {type(tools).__name__}."
        ) from exc
    result: list[Tool] = []
    for item in items:
        if isinstance(item, Tool):
            result.append(item)
        elif callable(item):
            result.append(Tool.from_function(item))
        else:
            raise LMStudioUsageError(
                f"Invalid tool {item!r:.60}: pass a function or a Tool, not {type(item).__name__}."
            )
    seen: set[str] = set()
    for tool in result:
        if tool.name in seen:
            raise LMStudioUsageError(
                f"Two tools are named {tool.name!r}; tool names must be unique."
            )
        seen.add(tool.name)
    return result

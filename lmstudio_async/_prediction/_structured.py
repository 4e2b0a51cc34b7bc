"""``response_format=``: turn a user's type, schema or grammar into the wire setting and a parser.

The reply is parsed once, when the prediction finishes; nothing here runs per fragment.
pydantic is supported by duck typing (``model_json_schema`` / ``model_validate_json``) and is
never imported.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from .._errors import LMStudioStructuredOutputError, LMStudioUsageError
from ..types.config import StructuredOutput

__all__ = [
    "GBNFGrammar",
    "ResponseFormat",
    "ResponseFormatLike",
    "inline_schema_refs",
    "msgspec_json_schema",
    "resolve_response_format",
]

T = TypeVar("T")


class GBNFGrammar(str):
    """A GBNF grammar to constrain the output: ``response_format=GBNFGrammar('root ::= ...')``.

    ``result.parsed`` is then the reply text.
    """

    __slots__ = ()


ResponseFormatLike = type[Any] | GBNFGrammar | StructuredOutput | Mapping[str, Any]
"""What ``response_format=`` accepts."""


@dataclass(frozen=True, slots=True)
class ResponseFormat(Generic[T]):
    """The wire setting plus the parser applied once to the finished reply."""

    structured: StructuredOutput
    parse: Callable[[str], T]
    description: str

    def parse_reply(self, content: str, stop_reason: str | None) -> T:
        """Parse the reply, or raise :class:`LMStudioStructuredOutputError` carrying it."""
        try:
            return self.parse(content)
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
            hint = (
                f" (generation stopped early: {stop_reason})"
                if stop_reason not in (None, "eosFound", "stopStringFound")
                else ""
            )
            raise LMStudioStructuredOutputError(
                f"The model's reply is not a valid {self.description}{hint}: {exc}. "
                f"Raw reply: {content[:200]!r}",
                content=content,
                stop_reason=stop_reason,
            ) from exc


def inline_schema_refs(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``schema`` with its top-level ``$ref`` resolved and ``$defs`` references inlined.

    LM Studio wants an object schema at the top (not a bare ``$ref``), and grammar-based
    samplers handle inline schemas best. Recursive definitions cannot be inlined: those refs
    stay, with the ``$defs`` they need kept at the top.
    """
    result = copy.deepcopy(dict(schema))
    defs: dict[str, Any] = result.pop("$defs", {})
    prefix = "#/$defs/"

    def lookup(ref: str) -> dict[str, Any]:
        name = ref[len(prefix) :] if ref.startswith(prefix) else None
        if name is None or name not in defs:
            raise LMStudioUsageError(f"Cannot resolve {ref!r} in the JSON schema {schema!r:.200}.")
        return dict(defs[name])

    kept: set[str] = set()

    def inline(node: Any, active: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [inline(item, active) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in active:
                kept.add(ref[len(prefix) :])
                return node  # recursive type: keep the reference
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            return inline({**lookup(ref), **siblings}, (*active, ref))
        return {key: inline(value, active) for key, value in node.items()}

    top = result.pop("$ref", None)
    root: dict[str, Any] = (
        inline({**lookup(top), **result}, (top,)) if isinstance(top, str) else inline(result, ())
    )
    if kept:
        # Recursive definitions reference each other; keep them whole (inlined where possible).
        root["$defs"] = {name: inline(defs[name], (prefix + name,)) for name in sorted(kept)}
    return root


def msgspec_json_schema(tp: Any, *, what: str) -> dict[str, Any]:
    """The inlined JSON schema msgspec generates for ``tp``; a clear error if it cannot."""
    try:
        schema = msgspec.json.schema(tp)
    except (TypeError, ValueError) as exc:
        raise LMStudioUsageError(
            f"Cannot build a JSON schema for {what}: {exc}. Use msgspec-supported types "
            "(Structs, dataclasses, TypedDicts, builtins, Literal, Enum, ...)."
        ) from exc
    return inline_schema_refs(schema)


def _is_pydantic_model(value: Any) -> bool:
    return (
        isinstance(value, type)
        and callable(getattr(value, "model_json_schema", None))
        and callable(getattr(value, "model_validate_json", None))
    )


def _decode_any(content: str) -> Any:
    return msgspec.json.decode(content)


def _text(content: str) -> str:
    return content


def _from_structured(value: StructuredOutput) -> ResponseFormat[Any]:
    if value.type == "gbnf" and value.gbnf_grammar:
        return ResponseFormat(value, _text, "reply to the GBNF grammar")
    if value.type == "json" and value.json_schema is not None:
        return ResponseFormat(value, _decode_any, "JSON document")
    raise LMStudioUsageError(
        f"response_format {value!r} needs a json_schema (type 'json') or a gbnf_grammar "
        "(type 'gbnf')."
    )


def resolve_response_format(value: Any) -> ResponseFormat[Any]:
    """Build the wire setting and parser for one ``response_format=`` value."""
    if isinstance(value, GBNFGrammar):
        if not value.strip():
            raise LMStudioUsageError("response_format=GBNFGrammar(...) needs a non-empty grammar.")
        return ResponseFormat(
            StructuredOutput(type="gbnf", gbnf_grammar=str(value)),
            _text,
            "reply to the GBNF grammar",
        )
    if isinstance(value, StructuredOutput):
        return _from_structured(value)
    if _is_pydantic_model(value):
        schema = inline_schema_refs(value.model_json_schema())
        return ResponseFormat(
            StructuredOutput(type="json", json_schema=schema),
            value.model_validate_json,
            f"{value.__name__} (pydantic model)",
        )
    if isinstance(value, type):
        schema = msgspec_json_schema(value, what=f"response_format={value.__name__}")
        decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(value)
        return ResponseFormat(
            StructuredOutput(type="json", json_schema=schema), decoder.decode, value.__name__
        )
    if isinstance(value, Mapping):
        kind = value.get("type")
        if kind == "gbnf" or (kind == "json" and ("jsonSchema" in value or "json_schema" in value)):
            grammar = value.get("gbnfGrammar", value.get("gbnf_grammar"))
            schema_value = value.get("jsonSchema", value.get("json_schema"))
            if schema_value is not None and not isinstance(schema_value, Mapping):
                raise LMStudioUsageError(
                    f"response_format jsonSchema must be a dict, got {type(schema_value).__name__}."
                )
            structured = StructuredOutput(
                type=kind,
                gbnf_grammar=grammar if isinstance(grammar, str) else None,
                json_schema=inline_schema_refs(schema_value) if schema_value else None,
            )
            return _from_structured(structured)
        if not value:
            raise LMStudioUsageError("response_format={} is empty; pass a JSON schema.")
        return ResponseFormat(
            StructuredOutput(type="json", json_schema=inline_schema_refs(value)),
            _decode_any,
            "JSON document",
        )
    raise LMStudioUsageError(
        f"Unsupported response_format {value!r:.80} of type {type(value).__name__}; pass a "
        "msgspec Struct (or other msgspec-supported) type, a pydantic model class, a JSON schema "
        "dict, or GBNFGrammar('...')."
    )

"""Rules from a JSON file (``lmstudio-async simulate --script FILE``).

The file holds ``{"rules": [{"match": {...}, "reply": {...}}, ...]}``. ``match`` keys are
:class:`Rule`'s conditions (``model``, ``last_user_message``, ``last_message_role``,
``has_tools``, ``endpoint``, ``times``); ``reply`` keys are :class:`ScriptedReply`'s fields
in snake_case, with ``tool_calls`` as ``[{"name", "arguments"?, "id"?, "fail"?}]``.
Everything is checked before the simulator starts: a bad file raises
:class:`ScriptFileError` naming the rule (counted from 1) and what is wrong with it.
JSON only: YAML would add a runtime dependency for a file most users write once.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ._rules import Rule
from ._scripting import PACING_FIELDS, ScriptedReply, ScriptedToolCall, pacing_problem

__all__ = ["ScriptFileError", "load_rules", "parse_rules"]

_MATCH_KEYS = {"model", "last_user_message", "last_message_role", "has_tools", "endpoint", "times"}
_REPLY_TYPES: dict[str, tuple[type, ...]] = {
    "content": (str,),
    "fragments": (list,),
    "reasoning": (str,),
    "tool_calls": (list,),
    "stop_reason": (str,),
    "time_to_first_token": (int, float),
    "tokens_per_second": (int, float),
    "error": (dict,),
    "prompt_tokens": (int,),
    "prompt_tokens_per_second": (int, float),
}
_TOOL_CALL_KEYS = {"name", "arguments", "id", "fail"}


class ScriptFileError(ValueError):
    """A rules file that cannot be used; the message says where and what is wrong."""


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "number" if isinstance(value, (int, float)) else "null"
    )


def _check(value: Any, types: tuple[type, ...], where: str, expected: str) -> None:
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        raise ScriptFileError(f"{where}: expected {expected}, got {_kind(value)}")


def _unknown(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise ScriptFileError(
            f"{where}: unknown key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def _tool_call(raw: Any, where: str) -> ScriptedToolCall:
    _check(raw, (dict,), where, "an object")
    _unknown(raw, _TOOL_CALL_KEYS, where)
    if "name" not in raw:
        raise ScriptFileError(f"{where}: missing 'name'")
    _check(raw["name"], (str,), f"{where}.name", "a string")
    arguments = raw.get("arguments", {})
    if arguments is not None:
        _check(arguments, (dict,), f"{where}.arguments", "an object or null")
    call_id = raw.get("id")
    if call_id is not None:
        _check(call_id, (str,), f"{where}.id", "a string")
    fail = raw.get("fail", False)
    _check(fail, (bool,), f"{where}.fail", "true or false")
    return ScriptedToolCall(raw["name"], arguments, id=call_id, fail=fail)


def _reply(raw: Any, where: str) -> ScriptedReply:
    _check(raw, (dict,), where, "an object")
    _unknown(raw, set(_REPLY_TYPES), where)
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        _check(value, _REPLY_TYPES[key], f"{where}.{key}", _expected(_REPLY_TYPES[key]))
        fields[key] = value
    if "fragments" in fields:
        for n, piece in enumerate(fields["fragments"]):
            _check(piece, (str,), f"{where}.fragments[{n}]", "a string")
    if "tool_calls" in fields:
        fields["tool_calls"] = [
            _tool_call(call, f"{where}.tool_calls[{n}]")
            for n, call in enumerate(fields["tool_calls"])
        ]
    if "error" in fields and not isinstance(fields["error"].get("title"), str):
        raise ScriptFileError(f"{where}.error: needs a string 'title' (an LM Studio error)")
    for key in PACING_FIELDS:
        problem = pacing_problem(key, fields[key]) if key in fields else None
        if problem is not None:
            raise ScriptFileError(f"{where}.{key}: {problem}")
    if fields.get("prompt_tokens", 0) < 0:
        raise ScriptFileError(f"{where}.prompt_tokens: must be 0 or more")
    return ScriptedReply(**fields)


def _expected(types: tuple[type, ...]) -> str:
    return {str: "a string", list: "an array", dict: "an object", int: "a number"}[types[0]]


def _rule(raw: Any, where: str) -> Rule:
    _check(raw, (dict,), where, "an object")
    _unknown(raw, {"match", "reply"}, where)
    if "reply" not in raw:
        raise ScriptFileError(f"{where}: missing 'reply'")
    match = raw.get("match", {})
    _check(match, (dict,), f"{where}.match", "an object")
    _unknown(match, _MATCH_KEYS, f"{where}.match")
    conditions: dict[str, Any] = {}
    for key in ("model", "last_message_role", "endpoint"):
        if key in match:
            _check(match[key], (str,), f"{where}.match.{key}", "a string")
            conditions[key] = match[key]
    if "last_user_message" in match:
        _check(match["last_user_message"], (str,), f"{where}.match.last_user_message", "a regex")
        try:
            conditions["last_user_message"] = re.compile(match["last_user_message"])
        except re.error as exc:
            raise ScriptFileError(f"{where}.match.last_user_message: bad regex: {exc}") from None
    if "has_tools" in match:
        _check(match["has_tools"], (bool,), f"{where}.match.has_tools", "true or false")
        conditions["has_tools"] = match["has_tools"]
    if "times" in match:
        _check(match["times"], (int,), f"{where}.match.times", "a whole number")
        conditions["times"] = match["times"]
    reply = _reply(raw["reply"], f"{where}.reply")
    try:
        return Rule(reply=reply, **conditions)
    except ValueError as exc:
        raise ScriptFileError(f"{where}.match: {exc}") from None


def parse_rules(document: Any) -> list[Rule]:
    """Rules from an already-parsed JSON document; :class:`ScriptFileError` if invalid."""
    _check(document, (dict,), "the file", 'an object with a "rules" list')
    _unknown(document, {"rules"}, "the file")
    if "rules" not in document:
        raise ScriptFileError('the file: missing the top-level "rules" list')
    _check(document["rules"], (list,), "rules", "an array")
    return [_rule(raw, f"rule {n}") for n, raw in enumerate(document["rules"], start=1)]


class _NotJsonNumber(Exception):
    pass


def _not_json(constant: str) -> Any:
    # Python's json accepts NaN and Infinity, which JSON does not: Infinity as a wait would
    # hang a prediction forever.
    raise _NotJsonNumber(constant)


def load_rules(path: str | Path) -> list[Rule]:
    """Read and check a rules file; :class:`ScriptFileError` says what is wrong and where."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptFileError(f"cannot read {path}: {exc}") from None
    try:
        document = json.loads(text, parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        raise ScriptFileError(f"{path} is not valid JSON: {exc}") from None
    except _NotJsonNumber as exc:
        raise ScriptFileError(
            f"{path} is not valid JSON: {exc} is not a JSON number (write a finite number)"
        ) from None
    return parse_rules(document)

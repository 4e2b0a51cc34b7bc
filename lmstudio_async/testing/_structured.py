"""Structured output: what the simulated model answers under ``llm.prediction.structured``.

LM Studio constrains sampling to a JSON schema or a GBNF grammar (llama.cpp's grammar format)
in chat predictions and completions alike. The simulator answers with a small deterministic
text the constraint accepts: the minimal instance of the schema, or a short string the
grammar derives. A grammar that does not parse fails the prediction, as it does in the app.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._envelope import SimulatorError, serialized_error
from ._models import instance_for_schema

__all__ = ["GrammarError", "constrained_content", "gbnf_sample"]


def constrained_content(structured: Any) -> str | None:
    """The reply a ``llm.prediction.structured`` value forces, or ``None`` if unconstrained.

    ``{"type": "json", "jsonSchema": S}`` gives the JSON of :func:`instance_for_schema` (``{}``
    without a schema); ``{"type": "gbnf", "gbnfGrammar": G}`` gives :func:`gbnf_sample`.
    Raises :class:`SimulatorError` (a failed prediction) for a grammar that does not parse.
    """
    if not isinstance(structured, Mapping):
        return None
    kind = structured.get("type")
    if kind == "json":
        schema = structured.get("jsonSchema")
        return json.dumps(instance_for_schema(schema) if schema is not None else {})
    if kind == "gbnf":
        grammar = structured.get("gbnfGrammar")
        try:
            if not isinstance(grammar, str):
                raise GrammarError("gbnfGrammar must be a string")
            return gbnf_sample(grammar)
        except GrammarError as exc:
            raise SimulatorError(
                serialized_error(
                    "Failed to parse the GBNF grammar",
                    cause=str(exc),
                    suggestion="Check the grammar against llama.cpp's GBNF syntax.",
                )
            ) from None
    return None


class GrammarError(ValueError):
    """A GBNF grammar that does not parse, or that derives no finite string."""


# ---- GBNF syntax ------------------------------------------------------------------------------
#
# grammar  := rule+          rule := NAME "::=" alts
# alts     := seq ("|" seq)*  seq  := (atom quantifier?)*
# atom     := "literal" | [class] | [^class] | . | NAME | "(" alts ")"
# quantifier := * | + | ? | {m} | {m,} | {m,n}
# '#' starts a comment. A rule ends where the next "NAME ::=" begins.

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<define>::=)
  | (?P<name>[a-zA-Z0-9_-]+)
  | (?P<literal>"(?:\\.|[^"\\])*")
  | (?P<cls>\[(?:\\.|[^\]\\])*\])
  | (?P<repeat>\{\s*\d+\s*(?:,\s*\d*\s*)?\})
  | (?P<punct>[()|*+?.])
    """,
    re.VERBOSE | re.DOTALL,
)
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "[": "[", "]": "]"}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
_UNBOUNDED = -1


@dataclass(frozen=True)
class _Item:
    kind: str  # "literal", "class", "any", "ref", "group"
    value: Any  # str, (negated, ranges), None, rule name, alternatives
    low: int = 1
    high: int = 1  # _UNBOUNDED for * and +


_Seq = list[_Item]
_Alts = list[_Seq]


def _unescape(text: str, where: str) -> list[str]:
    """The characters of a literal's or class's body, escapes resolved."""
    chars: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        i += 1
        if char != "\\":
            chars.append(char)
            continue
        if i >= len(text):
            raise GrammarError(f"dangling backslash in {where}")
        code = text[i]
        i += 1
        if code in _SIMPLE_ESCAPES:
            chars.append(_SIMPLE_ESCAPES[code])
        elif code in _HEX_ESCAPES:
            digits = text[i : i + _HEX_ESCAPES[code]]
            if len(digits) != _HEX_ESCAPES[code] or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                raise GrammarError(f"bad \\{code} escape in {where}")
            chars.append(chr(int(digits, 16)))
            i += len(digits)
        else:
            raise GrammarError(f"unknown escape \\{code} in {where}")
    return chars


def _parse_class(token: str) -> tuple[bool, list[tuple[str, str]]]:
    body = token[1:-1]
    negated = body.startswith("^")
    chars = _unescape(body[1:] if negated else body, f"character class {token}")
    ranges: list[tuple[str, str]] = []
    i = 0
    while i < len(chars):
        if i + 2 < len(chars) and chars[i + 1] == "-":
            ranges.append((chars[i], chars[i + 2]))
            i += 3
        else:
            ranges.append((chars[i], chars[i]))
            i += 1
    return negated, ranges


# Groups nest by recursion here (parser, depth): deeper nesting is refused with a clear error
# rather than Python's RecursionError. Real grammars nest a handful of levels.
_MAX_GROUP_NESTING = 100


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.nesting = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def at_rule_start(self) -> bool:
        first, second = self.peek(), self.peek(1)
        return first is not None and first[0] == "name" and second == ("define", "::=")

    def alternatives(self, nested: bool) -> _Alts:
        alts = [self.sequence(nested)]
        while self.peek() == ("punct", "|"):
            self.pos += 1
            alts.append(self.sequence(nested))
        return alts

    def sequence(self, nested: bool) -> _Seq:
        items: _Seq = []
        while True:
            token = self.peek()
            if token is None or token == ("punct", "|") or (not nested and self.at_rule_start()):
                return items
            if token == ("punct", ")"):
                if not nested:
                    raise GrammarError("unexpected ')'")
                return items
            items.append(self.quantified(self.atom()))

    def atom(self) -> _Item:
        token = self.peek()
        assert token is not None
        kind, text = token
        self.pos += 1
        if kind == "literal":
            return _Item("literal", "".join(_unescape(text[1:-1], f"literal {text}")))
        if kind == "cls":
            return _Item("class", _parse_class(text))
        if kind == "name":
            return _Item("ref", text)
        if token == ("punct", "."):
            return _Item("any", None)
        if token == ("punct", "("):
            self.nesting += 1
            if self.nesting > _MAX_GROUP_NESTING:
                raise GrammarError(
                    f"parentheses nested more than {_MAX_GROUP_NESTING} deep; "
                    "split the grammar into named rules"
                )
            alts = self.alternatives(nested=True)
            self.nesting -= 1
            if self.peek() != ("punct", ")"):
                raise GrammarError("missing ')'")
            self.pos += 1
            return _Item("group", alts)
        raise GrammarError(f"unexpected {text!r}")

    def quantified(self, item: _Item) -> _Item:
        token = self.peek()
        if token is None or token[0] not in ("punct", "repeat"):
            return item
        kind, text = token
        bounds = {"*": (0, _UNBOUNDED), "+": (1, _UNBOUNDED), "?": (0, 1)}.get(text)
        if kind == "repeat":
            low_text, comma, high_text = text[1:-1].partition(",")
            low = int(low_text)
            high = low  # {m}
            if comma:  # {m,} or {m,n}
                high = int(high_text) if high_text.strip() else _UNBOUNDED
            if high != _UNBOUNDED and high < low:
                raise GrammarError(f"bad repetition {text}")
            bounds = (low, high)
        if bounds is None:
            return item
        self.pos += 1
        return _Item(item.kind, item.value, *bounds)


def _tokenize(grammar: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(grammar):
        match = _TOKEN.match(grammar, pos)
        if match is None:
            line = grammar.count("\n", 0, pos) + 1
            raise GrammarError(f"unexpected character {grammar[pos]!r} on line {line}")
        pos = match.end()
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append((kind, match.group()))
    return tokens


def _parse(grammar: str) -> dict[str, _Alts]:
    parser = _Parser(_tokenize(grammar))
    rules: dict[str, _Alts] = {}
    while parser.peek() is not None:
        if not parser.at_rule_start():
            raise GrammarError(f"expected 'name ::=' but found {parser.peek()[1]!r}")  # type: ignore[index]
        name = parser.tokens[parser.pos][1]
        parser.pos += 2
        if name in rules:
            raise GrammarError(f"rule {name!r} is defined twice")
        rules[name] = parser.alternatives(nested=False)
    if "root" not in rules:
        raise GrammarError("the grammar has no 'root' rule")
    for alts in rules.values():
        for ref in _refs(alts):
            if ref not in rules:
                raise GrammarError(f"undefined rule {ref!r}")
    return rules


def _refs(alts: _Alts) -> list[str]:
    found: list[str] = []
    for seq in alts:
        for item in seq:
            if item.kind == "ref":
                found.append(item.value)
            elif item.kind == "group":
                found.extend(_refs(item.value))
    return found


# ---- sampling: the first alternative of least derivation depth, each item its minimum count ---

_INFINITE = float("inf")


def _depth(alts: _Alts, depths: Mapping[str, float]) -> float:
    """How deep the shallowest derivation of ``alts`` goes, given the rules' depths so far."""
    return min((_seq_depth(seq, depths) for seq in alts), default=0.0)


def _seq_depth(seq: _Seq, depths: Mapping[str, float]) -> float:
    deepest = 0.0
    for item in seq:
        if item.low == 0:
            continue
        if item.kind == "ref":
            deepest = max(deepest, depths[item.value] + 1)
        elif item.kind == "group":
            deepest = max(deepest, _depth(item.value, depths))
        elif item.kind == "class" and _class_char(item.value) is None:
            return _INFINITE
    return deepest


def _class_char(value: tuple[bool, list[tuple[str, str]]]) -> str | None:
    negated, ranges = value
    if not negated:
        return next((low for low, high in ranges if low <= high), None)

    def excluded(char: str) -> bool:
        return any(low <= char <= high for low, high in ranges)

    candidates: list[str] = [*"a0 ._-xA", *map(chr, range(0x20, 0x3000))]
    return next((char for char in candidates if not excluded(char)), None)


def gbnf_sample(grammar: str) -> str:
    """A short string the GBNF ``grammar`` (llama.cpp syntax) derives from its ``root`` rule.

    Optional and repeated items appear their minimum number of times; among alternatives the
    one with the shallowest derivation wins (the first on ties), so every grammar that derives
    any finite string yields one. Raises :class:`GrammarError` naming the fault otherwise.
    """
    rules = _parse(grammar)
    depths = _rule_depths(rules)
    if depths["root"] == _INFINITE:
        raise GrammarError("the 'root' rule derives no finite string")

    # An explicit stack, not recursion: a chain of thousands of rules is valid GBNF.
    out: list[str] = []
    pending: list[_Item] = []

    def expand(alts: _Alts) -> None:
        best = min(range(len(alts)), key=lambda n: _seq_depth(alts[n], depths))
        items = [item for item in alts[best] for _ in range(item.low)]
        pending.extend(reversed(items))

    expand(rules["root"])
    while pending:
        item = pending.pop()
        if item.kind == "literal":
            out.append(item.value)
        elif item.kind == "class":
            char = _class_char(item.value)
            assert char is not None  # depth would be infinite otherwise
            out.append(char)
        elif item.kind == "any":
            out.append("a")
        elif item.kind == "ref":
            expand(rules[item.value])
        else:
            expand(item.value)
    return "".join(out)


def _rule_depths(rules: Mapping[str, _Alts]) -> dict[str, float]:
    """Each rule's shallowest derivation depth (infinite if it derives no finite string).

    A worklist: a rule is looked at again only when a rule it refers to got shallower, so a
    long chain of rules costs linear time, not a pass over every rule per link.
    """
    depths: dict[str, float] = dict.fromkeys(rules, _INFINITE)
    users: dict[str, set[str]] = {name: set() for name in rules}
    for name, alts in rules.items():
        for ref in _refs(alts):
            users[ref].add(name)
    todo: list[str] = list(reversed(list(rules)))
    queued = set(todo)
    while todo:
        name = todo.pop()
        queued.discard(name)
        depth = _depth(rules[name], depths)
        if depth < depths[name]:
            depths[name] = depth
            for user in users[name] - queued:
                todo.append(user)
                queued.add(user)
    return depths

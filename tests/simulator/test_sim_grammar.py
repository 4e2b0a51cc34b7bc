"""GBNF grammars (llama.cpp syntax): the simulated model's answer is one the grammar derives."""

from __future__ import annotations

import json
import re

import pytest

from lmstudio_async.testing._structured import GrammarError, constrained_content, gbnf_sample

# The grammar the official lmstudio suite sends (a JSON object with three string fields; its
# root rule is one long line there), continued over lines where llama.cpp allows: after "::=",
# after "|" and inside "( )".
OFFICIAL_JSON_GRAMMAR = r"""
root ::= "{\"response\":" response (
  ",\"first_word_in_response\":" first-word-in-response
  ",\"lastWordInResponse\":" last-word-in-response ) "}"
response ::= string
first-word-in-response ::= string
last-word-in-response ::= string
string ::=
  "\"" (
    [^"\\\x7f\x00-\x1f] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4})
  )* "\""
""".lstrip()


def test_the_official_suites_json_grammar_yields_json_with_its_fields() -> None:
    parsed = json.loads(gbnf_sample(OFFICIAL_JSON_GRAMMAR))
    assert list(parsed) == ["response", "first_word_in_response", "lastWordInResponse"]


@pytest.mark.parametrize(
    ("grammar", "expected"),
    [
        ('root ::= "yes" | "no"', "yes"),
        ('root ::= [0-9]+ "x"{2,3} [a-c]? [q]*', "0xx"),
        ("root ::= item{3}\nitem ::= [^a-z]", "000"),
        # The shallowest alternative wins, so recursion ends: "(" a ")" would never stop.
        ('root ::= a\na ::= "(" a ")" | "leaf"', "leaf"),
        ('# a comment\nroot ::= "a" # trailing\n  "b"', "ab"),
        (r'root ::= "\x41\u00e9\n\t\"\\"', 'A\u00e9\n\t"\\'),
        ("root ::= .", "a"),
        ('root ::= ( "a" | "b" ) ( "c" )+', "ac"),
    ],
)
def test_samples_follow_the_grammar(grammar: str, expected: str) -> None:
    assert gbnf_sample(grammar) == expected


@pytest.mark.parametrize(
    ("grammar", "fault"),
    [
        ('item ::= "a"', "no 'root' rule"),
        ("root ::= missing", "undefined rule 'missing'"),
        ('root ::= "a', "unexpected character"),
        ('root ::= "a" )', "unexpected ')'"),
        ('root ::= ( "a"', "missing ')'"),
        ('root ::= "\\q"', "unknown escape \\q"),
        ('root ::= "a"{3,1}', "bad repetition"),
        ("root ::= root", "derives no finite string"),
        ('root ::= "a"\nroot ::= "b"', "defined twice"),
        ("root ::= " + "(" * 2000 + '"x"' + ")" * 2000, "nested more than 100 deep"),
    ],
)
def test_a_faulty_grammar_is_refused_with_the_fault_named(grammar: str, fault: str) -> None:
    with pytest.raises(GrammarError, match=re.escape(fault)):
        gbnf_sample(grammar)


@pytest.mark.parametrize("length", [1_500, 3_000])
def test_a_long_chain_of_rules_is_sampled(length: int) -> None:
    # Valid GBNF of any derivation depth: no recursion limit in the way.
    rules = [f"r{n} ::= r{n + 1}" for n in range(1, length)]
    grammar = "\n".join(["root ::= r1", *rules, f'r{length} ::= "z"'])
    assert gbnf_sample(grammar) == "z"


def test_structured_settings_map_to_constrained_content() -> None:
    assert constrained_content(None) is None
    assert constrained_content({"type": "none"}) is None
    assert constrained_content({"type": "json"}) == "{}"
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}}
    assert constrained_content({"type": "json", "jsonSchema": schema}) == '{"n": 3}'
    assert constrained_content({"type": "gbnf", "gbnfGrammar": 'root ::= "ok"'}) == "ok"

"""Rules files: a valid file becomes rules; a bad one is refused naming the rule and the fault."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lmstudio_async.testing import ScriptedReply, ScriptedToolCall, ScriptFileError, load_rules


def _write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(document))
    return path


def test_a_full_rule_becomes_a_rule(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "rules": [
                {
                    "match": {
                        "model": "m",
                        "last_user_message": "^hi",
                        "last_message_role": "user",
                        "has_tools": True,
                        "endpoint": "predict",
                        "times": 2,
                    },
                    "reply": {
                        "content": "x",
                        "fragments": ["a", "b"],
                        "reasoning": "r",
                        "tool_calls": [
                            {"name": "t", "arguments": {"k": 1}, "id": "c1", "fail": False},
                            {"name": "u", "arguments": None},
                        ],
                        "stop_reason": "toolCalls",
                        "time_to_first_token": 0.5,
                        "tokens_per_second": 10,
                        "prompt_tokens": 7,
                    },
                },
                {"reply": {"error": {"title": "Boom"}}},
            ]
        },
    )
    first, second = load_rules(path)
    assert (first.model, first.last_message_role, first.has_tools) == ("m", "user", True)
    assert (first.endpoint, first.times) == ("predict", 2)
    assert first.last_user_message is not None
    assert first.last_user_message.pattern == "^hi"
    assert first.reply == ScriptedReply(
        content="x",
        fragments=["a", "b"],
        reasoning="r",
        tool_calls=[
            ScriptedToolCall("t", {"k": 1}, id="c1"),
            ScriptedToolCall("u", None),
        ],
        stop_reason="toolCalls",
        time_to_first_token=0.5,
        tokens_per_second=10,
        prompt_tokens=7,
    )
    assert second.model is None
    assert second.reply == ScriptedReply(error={"title": "Boom"})


GOOD = {"reply": {"content": "ok"}}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], 'the file: expected an object with a "rules" list, got array'),
        ({}, 'the file: missing the top-level "rules" list'),
        ({"rules": [], "extra": 1}, "the file: unknown key 'extra'"),
        ({"rules": {}}, "rules: expected an array, got object"),
        ({"rules": [GOOD, {}]}, "rule 2: missing 'reply'"),
        ({"rules": [GOOD, GOOD, {"reply": {}, "when": {}}]}, "rule 3: unknown key 'when'"),
        ({"rules": [{"match": {"role": "user"}, **GOOD}]}, "rule 1.match: unknown key 'role'"),
        (
            {"rules": [{"match": {"last_user_message": "("}, **GOOD}]},
            "rule 1.match.last_user_message: bad regex: missing ), unterminated subpattern",
        ),
        (
            {"rules": [{"match": {"has_tools": "yes"}, **GOOD}]},
            "rule 1.match.has_tools: expected true or false, got string",
        ),
        (
            {"rules": [{"match": {"times": True}, **GOOD}]},
            "rule 1.match.times: expected a whole number, got boolean",
        ),
        ({"rules": [{"match": {"times": 0}, **GOOD}]}, "rule 1.match: times must be at least 1"),
        (
            {"rules": [{"match": {"endpoint": "chat"}, **GOOD}]},
            "rule 1.match: endpoint must be one of ('predict', 'completeRawText'), not 'chat'",
        ),
        ({"rules": [{"reply": {"text": "hi"}}]}, "rule 1.reply: unknown key 'text'"),
        ({"rules": [{"reply": {"content": 3}}]}, "rule 1.reply.content: expected a string"),
        (
            {"rules": [{"reply": {"fragments": ["a", 1]}}]},
            "rule 1.reply.fragments[1]: expected a string, got number",
        ),
        (
            {"rules": [{"reply": {"tool_calls": [{"arguments": {}}]}}]},
            "rule 1.reply.tool_calls[0]: missing 'name'",
        ),
        (
            {"rules": [{"reply": {"tool_calls": [{"name": "t", "arguments": [1]}]}}]},
            "rule 1.reply.tool_calls[0].arguments: expected an object or null, got array",
        ),
        (
            {"rules": [{"reply": {"error": {"message": "x"}}}]},
            "rule 1.reply.error: needs a string 'title'",
        ),
        (
            {"rules": [{"reply": {"tokens_per_second": -1}}]},
            "rule 1.reply.tokens_per_second: must be more than 0 per second",
        ),
        (
            # --tokens-per-second 0 is refused, so a file may not say it either.
            {"rules": [{"reply": {"tokens_per_second": 0}}]},
            "rule 1.reply.tokens_per_second: must be more than 0 per second",
        ),
        (
            {"rules": [{"reply": {"time_to_first_token": -0.5}}]},
            "rule 1.reply.time_to_first_token: must be 0 or more seconds",
        ),
        (
            {"rules": [{"reply": {"prompt_tokens": -3}}]},
            "rule 1.reply.prompt_tokens: must be 0 or more",
        ),
        (
            {"rules": [{"match": {"model": ""}, **GOOD}]},
            "rule 1.match: model must be an instance identifier or model key, not ''",
        ),
        (
            {"rules": [{"match": {"last_message_role": "robot"}, **GOOD}]},
            "rule 1.match: last_message_role must be one of system, user, assistant, tool",
        ),
    ],
)
def test_a_bad_file_is_refused_with_where_and_what(
    tmp_path: Path, document: Any, message: str
) -> None:
    with pytest.raises(ScriptFileError) as info:
        load_rules(_write(tmp_path, document))
    assert str(info.value).startswith(message)


def test_unreadable_and_invalid_json_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ScriptFileError, match="cannot read"):
        load_rules(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"rules": [')
    with pytest.raises(ScriptFileError, match="is not valid JSON"):
        load_rules(broken)


@pytest.mark.parametrize("constant", ["Infinity", "-Infinity", "NaN"])
def test_non_json_numbers_are_refused(tmp_path: Path, constant: str) -> None:
    # Python's json reads them; as a wait, Infinity would hang the prediction forever.
    path = tmp_path / "rules.json"
    path.write_text(
        '{"rules": [{"reply": {"time_to_first_token": CONSTANT}}]}'.replace("CONSTANT", constant)
    )
    with pytest.raises(ScriptFileError, match=f"{constant} is not a JSON number"):
        load_rules(path)

"""What the types put on the wire validates against the published protocol schema (lms.json).

lms.json is one generation older than the newest server (PROTOCOL.md §6 item 16), so the
histories here avoid the newer ``toolCallResult.name``.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema
import msgspec
import pytest
from _protocol_schema import SCHEMA_MISSING, SCHEMA_PATH

from lmstudio_async.types import (
    Chat,
    FilePart,
    LLMLoadConfig,
    PredictionConfig,
    ToolCallRequest,
    ToolCallRequestPart,
    ToolCallResultPart,
    single_layer_stack,
)


@cache
def _schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def validate(definition: str, obj: msgspec.Struct) -> None:
    if not SCHEMA_PATH.exists():
        pytest.skip(SCHEMA_MISSING)
    full = _schema()
    schema = {"definitions": full["definitions"], "$ref": f"#/definitions/{definition}"}
    cls = jsonschema.validators.validator_for(full)
    cls(schema).validate(json.loads(msgspec.json.encode(obj)))


def test_chat_history_validates() -> None:
    chat = Chat.from_history("What is 1 + 3?")
    chat.add_system_prompt("Be terse.")
    chat.append("user", [FilePart(name="a.png", identifier="f-1", size_bytes=3, file_type="image")])
    chat.append(
        "assistant",
        [
            "Let me add those.",
            ToolCallRequestPart(
                tool_call_request=ToolCallRequest(name="add", id="call_1", arguments={"a": 1})
            ),
            ToolCallRequestPart(tool_call_request=ToolCallRequest(name="noargs")),
        ],
    )
    chat.append("tool", [ToolCallResultPart(content="4", tool_call_id="call_1")])
    validate("chatHistoryData", chat.to_wire())


def test_prediction_config_stack_validates() -> None:
    config = PredictionConfig(
        max_tokens=False,
        temperature=0.3,
        top_p_sampling=0.9,
        stop_strings=["\n"],
        structured={"type": "object"},  # type: ignore[arg-type]
        tool_choice="auto",
        reasoning_parsing={"enabled": False},  # type: ignore[arg-type]
    )
    validate("kvConfigStack", single_layer_stack(config.to_kv_fields()))


def test_load_config_stack_validates() -> None:
    config = LLMLoadConfig.from_value({"contextLength": 4096, "gpu": {"ratio": 1, "mainGpu": 0}})
    validate("kvConfigStack", single_layer_stack(config.to_kv_fields(), "completeModeFormatting"))

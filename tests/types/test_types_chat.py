"""Chat construction, its errors, and the wire form of chat histories (PROTOCOL.md §3.3, §3.8)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from lmstudio_async._errors import LMStudioUsageError
from lmstudio_async.types import (
    Chat,
    ChatHistoryData,
    ChatMessage,
    FileHandle,
    FilePart,
    TextPart,
    ToolCallRequest,
    ToolCallRequestPart,
    ToolCallResultPart,
)

ENCODER = msgspec.json.Encoder()

# The history of the predict example in PROTOCOL.md §3.3.
EXAMPLE_HISTORY = {
    "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Answer in one word."}]},
        {"role": "user", "content": [{"type": "text", "text": "Name a prime greater than 10."}]},
    ]
}

# The act() round of PROTOCOL.md §3.8.
TOOL_ROUND = [
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me add those."},
            {
                "type": "toolCallRequest",
                "toolCallRequest": {
                    "type": "function",
                    "id": "call_71",
                    "name": "add",
                    "arguments": {"a": 1, "b": 3},
                },
            },
        ],
    },
    {
        "role": "tool",
        "content": [
            {"type": "toolCallResult", "toolCallId": "call_71", "name": "add", "content": "4"}
        ],
    },
]


def wire_json(chat: Chat) -> Any:
    return json.loads(ENCODER.encode(chat.to_wire()))


def test_simple_message_dicts_encode_like_the_protocol_example() -> None:
    chat = Chat.from_history(
        [
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "Name a prime greater than 10."},
        ]
    )
    assert wire_json(chat) == EXAMPLE_HISTORY


def test_tool_round_round_trips_through_the_wire() -> None:
    chat = Chat.from_history(TOOL_ROUND)
    assert wire_json(chat) == {"messages": TOOL_ROUND}
    request = chat[0].content[1]
    assert request == ToolCallRequestPart(
        tool_call_request=ToolCallRequest(name="add", id="call_71", arguments={"a": 1, "b": 3})
    )
    decoded = msgspec.json.decode(ENCODER.encode(chat.to_wire()), type=ChatHistoryData)
    assert Chat.from_wire(decoded) == chat


def test_optional_fields_are_omitted_not_null() -> None:
    chat = Chat.empty()
    chat.append("assistant", [ToolCallRequestPart(tool_call_request=ToolCallRequest(name="f"))])
    chat.append("tool", [ToolCallResultPart(content='"ok"')])
    assert wire_json(chat)["messages"] == [
        {
            "role": "assistant",
            "content": [
                {"type": "toolCallRequest", "toolCallRequest": {"type": "function", "name": "f"}}
            ],
        },
        {"role": "tool", "content": [{"type": "toolCallResult", "content": '"ok"'}]},
    ]


def test_accepted_history_forms_are_equivalent() -> None:
    expected = Chat.empty()
    expected.add_user_message("hi")
    forms: list[object] = [
        "hi",
        [{"role": "user", "content": "hi"}],
        [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        [ChatMessage(role="user", content=[TextPart(text="hi")])],
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
        ChatHistoryData(messages=[ChatMessage(role="user", content=[TextPart(text="hi")])]),
        expected,
    ]
    for form in forms:
        assert Chat.from_history(form) == expected, form


def test_from_history_copies_a_chat() -> None:
    original = Chat.from_history("hi")
    copy = Chat.from_history(original)
    copy.add_assistant_response("hello")
    assert len(original) == 1
    assert len(copy) == 2


def test_appending_a_prediction_result_adds_an_assistant_message() -> None:
    @dataclass
    class FakeResult:
        content: str

    chat = Chat.from_history("2+2?")
    chat.append(FakeResult("4"))
    assert [(m.role, m.text) for m in chat] == [("user", "2+2?"), ("assistant", "4")]


def test_file_parts_and_system_prompt() -> None:
    image = FilePart(name="cat.png", identifier="file-1", size_bytes=10, file_type="image")
    chat = Chat.empty()
    chat.add_system_prompt("Describe images.")
    chat.append("user", ["What is this?", image])
    assert wire_json(chat)["messages"][1]["content"][1] == {
        "type": "file",
        "name": "cat.png",
        "identifier": "file-1",
        "sizeBytes": 10,
        "fileType": "image",
    }


def test_sequence_protocol_and_repr() -> None:
    chat = Chat.from_history(
        [{"role": "system", "content": "x" * 100}, {"role": "user", "content": "hi"}]
    )
    assert len(chat) == 2
    assert [m.role for m in chat] == ["system", "user"]
    assert chat[-1].text == "hi"
    assert chat[0:1][0].role == "system"
    text = repr(chat)
    assert text.startswith("Chat([system: 'xxx")
    assert "user: 'hi'" in text
    assert len(text) < 120
    assert chat.to_dict()["messages"][1] == {
        "role": "user",
        "content": [{"type": "text", "text": "hi"}],
    }


@pytest.mark.parametrize(
    ("role", "content", "expected"),
    [
        ("tool", "text", r"'tool' message cannot contain a 'text' part.*'toolCallResult'"),
        (
            "user",
            [ToolCallResultPart(content="1")],
            r"'user' message cannot contain a 'toolCallResult' part.*'text', 'file'",
        ),
        (
            "system",
            [{"type": "toolCallRequest", "toolCallRequest": {"type": "function", "name": "f"}}],
            r"'system' message cannot contain a 'toolCallRequest' part",
        ),
        (
            "robot",
            "hi",
            r"Invalid chat message role 'robot'.*'system', 'user', 'assistant', 'tool'",
        ),
        ("user", 42, r"Invalid message content of type int"),
        ("user", [{"type": "video"}], r"Invalid message part .*valid types: 'text', 'file'"),
        ("user", [3.5], r"Invalid message part 3.5 of type float"),
    ],
)
def test_invalid_messages_say_what_is_wrong(role: str, content: object, expected: str) -> None:
    with pytest.raises(LMStudioUsageError, match=expected):
        Chat.empty().append(role, content)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    "history",
    [
        42,
        [{"role": "user"}],
        [{"role": "user", "content": "hi", "extra": 1}],
        [object()],
        {"messages": [], "other": 1},
    ],
)
def test_invalid_histories_are_refused(history: object) -> None:
    with pytest.raises(LMStudioUsageError):
        Chat.from_history(history)


def test_decoding_a_wire_history_enforces_part_rules() -> None:
    bad = b'{"messages":[{"role":"tool","content":[{"type":"text","text":"x"}]}]}'
    with pytest.raises(msgspec.ValidationError, match="'tool' message cannot contain"):
        msgspec.json.decode(bad, type=ChatHistoryData)


def test_require_user_message() -> None:
    chat = Chat.empty()
    chat.add_system_prompt("You are terse.")
    with pytest.raises(LMStudioUsageError, match=r"no user message.*add_user_message"):
        chat.require_user_message()
    chat.add_user_message("hi")
    chat.require_user_message()


def test_append_without_content_is_refused() -> None:
    with pytest.raises(LMStudioUsageError, match="needs content"):
        Chat.empty().append("user")  # type: ignore[call-overload]
    with pytest.raises(LMStudioUsageError, match="Cannot append int"):
        Chat.empty().append(5)  # type: ignore[call-overload]


def test_chat_message_dicts_in_a_list_may_mix_with_structs() -> None:
    history: list[Any] = [
        ChatMessage(role="user", content=[TextPart(text="a")]),
        {"role": "assistant", "content": "b"},
    ]
    assert [m.text for m in Chat.from_history(history)] == ["a", "b"]


IMAGE = FileHandle(name="cat.png", identifier="file-1", size_bytes=1234, file_type="image")
IMAGE_PART = {
    "type": "file",
    "name": "cat.png",
    "identifier": "file-1",
    "sizeBytes": 1234,
    "fileType": "image",
}


def test_images_follow_the_text_in_every_way_of_building_a_chat() -> None:
    appended = Chat.empty()
    appended.append("user", "What is this?", images=[IMAGE])
    added = Chat.empty()
    added.add_user_message("What is this?", images=[IMAGE])
    from_items = Chat.from_history(
        [{"role": "user", "content": "What is this?", "images": [IMAGE]}]
    )
    as_part = Chat.from_history([{"role": "user", "content": ["What is this?", IMAGE]}])
    expected = [
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}, IMAGE_PART]}
    ]
    for chat in (appended, added, from_items, as_part):
        assert chat.to_dict()["messages"] == expected
    assert "<file cat.png>" in repr(appended)


def test_images_without_text_send_only_the_images() -> None:
    chat = Chat.empty()
    chat.add_user_message("", images=[IMAGE])
    assert chat.to_dict()["messages"][0]["content"] == [IMAGE_PART]


@pytest.mark.parametrize(
    ("images", "expected"),
    [
        ("cat.png", "images must be a list of file handles"),
        (b"\x89PNG", "images must be a list of file handles"),
        (["cat.png"], r"images\[0\] is a str; images must be file handles"),
        ([IMAGE, 3], r"images\[1\] is a int"),
    ],
)
def test_invalid_images_say_what_to_pass(images: Any, expected: str) -> None:
    with pytest.raises(LMStudioUsageError, match=expected):
        Chat.empty().add_user_message("Hi", images=images)


def test_images_are_refused_where_lm_studio_refuses_files() -> None:
    with pytest.raises(LMStudioUsageError, match="'tool' message cannot contain a 'file' part"):
        Chat.empty().append("tool", [], images=[IMAGE])
    with pytest.raises(LMStudioUsageError, match="images go with a role and text"):
        Chat.empty().append(ChatMessage(role="user", content=[]), images=[IMAGE])  # type: ignore[call-overload]
    with pytest.raises(LMStudioUsageError, match="optionally 'images'"):
        Chat.from_history([{"role": "user", "content": "Hi", "pictures": [IMAGE]}])

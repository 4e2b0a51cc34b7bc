"""Chat histories: the :class:`Chat` users build, and its wire form ``ChatHistoryData``.

The message and part structs *are* the wire structs (PROTOCOL.md §5.1), so turning a
:class:`Chat` into what the ``predict`` channel sends is a list copy, not a conversion.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol, overload, runtime_checkable

import msgspec

from .._errors import LMStudioUsageError
from .files import FileHandle, FileType

__all__ = [
    "Chat",
    "ChatHistoryData",
    "ChatMessage",
    "FilePart",
    "FileType",
    "HasContent",
    "Part",
    "Role",
    "TextPart",
    "ToolCallRequest",
    "ToolCallRequestPart",
    "ToolCallResultPart",
]

Role = Literal["system", "user", "assistant", "tool"]
"""Who wrote a chat message."""


class TextPart(
    msgspec.Struct, tag="text", tag_field="type", rename="camel", kw_only=True, frozen=True
):
    """Plain text inside a message."""

    text: str


class FilePart(
    msgspec.Struct, tag="file", tag_field="type", rename="camel", kw_only=True, frozen=True
):
    """A file uploaded through ``client.files`` (e.g. an image), inside a message.

    Chats build it from a :class:`FileHandle`: ``chat.add_user_message(text, images=[handle])``.
    """

    name: str
    identifier: str
    size_bytes: int
    file_type: FileType


class ToolCallRequest(
    msgspec.Struct,
    tag="function",
    tag_field="type",
    rename="camel",
    kw_only=True,
    omit_defaults=True,
    frozen=True,
):
    """A tool call the model asked for (``type`` is always ``"function"`` on the wire)."""

    name: str
    id: str | None = None
    arguments: dict[str, Any] | None = None


class ToolCallRequestPart(
    msgspec.Struct,
    tag="toolCallRequest",
    tag_field="type",
    rename="camel",
    kw_only=True,
    frozen=True,
):
    """An assistant message part recording a tool call request."""

    tool_call_request: ToolCallRequest


class ToolCallResultPart(
    msgspec.Struct,
    tag="toolCallResult",
    tag_field="type",
    rename="camel",
    kw_only=True,
    omit_defaults=True,
    frozen=True,
):
    """The (JSON-encoded) result of one tool call, inside a ``tool`` message."""

    content: str
    tool_call_id: str | None = None
    name: str | None = None


Part = TextPart | FilePart | ToolCallRequestPart | ToolCallResultPart
"""Any chat message part (a tagged union on ``type``)."""

_PART_TYPES = (TextPart, FilePart, ToolCallRequestPart, ToolCallResultPart)
_ALLOWED_PARTS: dict[str, tuple[type[Any], ...]] = {
    "system": (TextPart, FilePart),
    "user": (TextPart, FilePart),
    "assistant": (TextPart, FilePart, ToolCallRequestPart),
    "tool": (ToolCallResultPart,),
}
_ROLES = tuple(_ALLOWED_PARTS)


def _wire_tag(part_type: type[Any]) -> str:
    return str(part_type.__struct_config__.tag)


def _allowed_text(role: str) -> str:
    return ", ".join(repr(_wire_tag(t)) for t in _ALLOWED_PARTS[role])


class ChatMessage(msgspec.Struct, rename="camel", kw_only=True):
    """One message of a chat history; ``content`` is always a list of parts.

    The parts allowed depend on the role (PROTOCOL.md §5.1); anything else raises
    :class:`LMStudioUsageError` at construction.
    """

    role: Role
    content: list[Part]

    def __post_init__(self) -> None:
        allowed = _ALLOWED_PARTS.get(self.role)
        if allowed is None:
            raise LMStudioUsageError(
                f"Invalid chat message role {self.role!r}; expected one of {_ROLES}."
            )
        if not isinstance(self.content, list):
            raise LMStudioUsageError(
                f"Chat message content must be a list of parts, got {type(self.content).__name__}."
            )
        for part in self.content:
            if not isinstance(part, allowed):
                raise LMStudioUsageError(
                    f"A {self.role!r} message cannot contain {_describe(part)}; "
                    f"allowed part types for {self.role!r}: {_allowed_text(self.role)}."
                )

    @property
    def text(self) -> str:
        """The concatenated text of the message's text parts."""
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


class ChatHistoryData(msgspec.Struct, rename="camel", kw_only=True):
    """The wire form of a chat history: ``{"messages": [...]}``."""

    messages: list[ChatMessage]


@runtime_checkable
class HasContent(Protocol):
    """Anything with a text ``content`` (e.g. a prediction result) appendable as a reply."""

    @property
    def content(self) -> str: ...


def _describe(part: object) -> str:
    if isinstance(part, _PART_TYPES):
        return f"a {_wire_tag(type(part))!r} part"
    return f"{type(part).__name__} {part!r:.60}"


def _file_part(handle: FileHandle) -> FilePart:
    return FilePart(
        name=handle.name,
        identifier=handle.identifier,
        size_bytes=handle.size_bytes,
        file_type=handle.file_type,
    )


def _to_part(item: object) -> Part:
    """Convert one user-supplied content item (part, str, file handle or wire dict) to a part."""
    if isinstance(item, _PART_TYPES):
        return item
    if isinstance(item, FileHandle):
        return _file_part(item)
    if isinstance(item, str):
        return TextPart(text=item)
    if isinstance(item, Mapping):
        try:
            part: Part = msgspec.convert(item, Part)
            return part
        except msgspec.ValidationError as exc:
            raise LMStudioUsageError(
                f"Invalid message part {dict(item)!r}: {exc}. Parts are wire-form dicts such as "
                '{"type": "text", "text": "..."}; valid types: '
                f"{', '.join(repr(_wire_tag(t)) for t in _PART_TYPES)}."
            ) from exc
    raise LMStudioUsageError(
        f"Invalid message part {item!r:.60} of type {type(item).__name__}; expected a str, "
        "a part (TextPart, FilePart, ToolCallRequestPart, ToolCallResultPart), a FileHandle or a "
        "wire-form dict."
    )


def _to_content(content: object) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(text=content)]
    if isinstance(content, (*_PART_TYPES, FileHandle, Mapping)):
        return [_to_part(content)]
    if isinstance(content, Iterable):
        return [_to_part(item) for item in content]
    raise LMStudioUsageError(
        f"Invalid message content of type {type(content).__name__}; expected a str, a part, "
        "or a list of parts."
    )


def _image_parts(images: object) -> list[Part]:
    """``images=[...]``: file handles (from ``client.files.prepare_image``) or file parts."""
    if isinstance(images, str | bytes) or not isinstance(images, Iterable):
        raise LMStudioUsageError(
            f"images must be a list of file handles from client.files.prepare_image(), got "
            f"{type(images).__name__}."
        )
    parts: list[Part] = []
    for index, image in enumerate(images):
        if isinstance(image, FileHandle):
            parts.append(_file_part(image))
        elif isinstance(image, FilePart):
            parts.append(image)
        else:
            raise LMStudioUsageError(
                f"images[{index}] is a {type(image).__name__}; images must be file handles: "
                "handle = await client.files.prepare_image('photo.png')."
            )
    return parts


def _make_message(role: object, content: object, images: object = None) -> ChatMessage:
    if role not in _ALLOWED_PARTS:
        raise LMStudioUsageError(f"Invalid chat message role {role!r}; expected one of {_ROLES}.")
    parts = _to_content(content)
    if images is not None:
        files = _image_parts(images)
        # Text first, then the images, as LM Studio's own chat builds a message; an empty text
        # next to images says nothing, so it is left out.
        if files and content == "":
            parts = []
        parts.extend(files)
    return ChatMessage(role=role, content=parts)  # type: ignore[arg-type]


_MESSAGE_KEYS = frozenset({"role", "content", "images"})


def _message_from_item(item: object) -> ChatMessage:
    if isinstance(item, ChatMessage):
        return ChatMessage(role=item.role, content=list(item.content))
    if isinstance(item, Mapping):
        if "role" not in item or "content" not in item or not _MESSAGE_KEYS.issuperset(item):
            raise LMStudioUsageError(
                f"Invalid chat message {dict(item)!r:.120}; expected a dict with the keys "
                "'role' and 'content', and optionally 'images' (a list of file handles)."
            )
        return _make_message(item["role"], item["content"], item.get("images"))
    raise LMStudioUsageError(
        f"Invalid chat message {item!r:.60} of type {type(item).__name__}; expected a "
        "ChatMessage or a dict like {'role': 'user', 'content': 'Hello'}."
    )


_HISTORY_FORMS = (
    "a Chat, a str (one user message), a list of ChatMessage objects or of "
    "{'role': ..., 'content': ...} dicts, ChatHistoryData, or a wire dict {'messages': [...]}"
)


class Chat:
    """A conversation to send to ``respond()`` / ``act()``.

    Build one with :meth:`from_history` or :meth:`empty` and the ``add_*`` / :meth:`append`
    helpers. Iterating yields :class:`ChatMessage` objects.
    """

    __slots__ = ("_messages",)

    def __init__(self, messages: Iterable[ChatMessage] = ()) -> None:
        self._messages: list[ChatMessage] = [_message_from_item(m) for m in messages]

    @classmethod
    def empty(cls) -> Chat:
        """Return a chat with no messages."""
        return cls()

    @classmethod
    def from_history(cls, history: object) -> Chat:
        """Build a chat from any accepted history form (a :class:`Chat` is copied).

        Accepted: a :class:`Chat`, a ``str`` (one user message), a list of
        :class:`ChatMessage` objects or ``{"role": ..., "content": str | [parts]}`` dicts
        (optionally with ``"images": [file handles]``), :class:`ChatHistoryData`, or the wire
        dict ``{"messages": [...]}``.
        """
        if isinstance(history, Chat):
            return history.copy()
        if isinstance(history, str):
            return cls([ChatMessage(role="user", content=[TextPart(text=history)])])
        if isinstance(history, (ChatHistoryData, Mapping)):
            return cls.from_wire(history)
        if isinstance(history, Sequence):
            chat = cls()
            chat._messages = [_message_from_item(item) for item in history]
            return chat
        raise LMStudioUsageError(
            f"Cannot build a Chat from {type(history).__name__}; expected {_HISTORY_FORMS}."
        )

    @classmethod
    def from_wire(cls, data: ChatHistoryData | Mapping[str, Any]) -> Chat:
        """Build a chat from ``ChatHistoryData`` or its JSON-like dict form."""
        if isinstance(data, ChatHistoryData):
            return cls(data.messages)
        if set(data) != {"messages"} or not isinstance(data["messages"], Sequence):
            raise LMStudioUsageError(
                f"A chat history dict must be {{'messages': [...]}}, got keys {sorted(data)}."
            )
        chat = cls()
        chat._messages = [_message_from_item(item) for item in data["messages"]]
        return chat

    def to_wire(self) -> ChatHistoryData:
        """Return the wire form (shares the immutable parts; cheap)."""
        return ChatHistoryData(messages=list(self._messages))

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form as plain JSON-compatible Python objects."""
        result: dict[str, Any] = msgspec.to_builtins(self.to_wire())
        return result

    def copy(self) -> Chat:
        """Return an independent copy (appending to it leaves this chat unchanged)."""
        chat = Chat()
        chat._messages = [ChatMessage(role=m.role, content=list(m.content)) for m in self._messages]
        return chat

    @overload
    def append(
        self,
        role: Role,
        content: str | Part | Iterable[Any],
        *,
        images: Sequence[FileHandle | FilePart] | None = None,
    ) -> ChatMessage: ...
    @overload
    def append(self, role: HasContent | ChatMessage, content: None = None) -> ChatMessage: ...
    def append(
        self,
        role: object,
        content: object = None,
        *,
        images: Sequence[FileHandle | FilePart] | None = None,
    ) -> ChatMessage:
        """Append a message and return it.

        ``chat.append("user", "Hi")`` adds a message with the given role and content (a str,
        a part, or a list of parts / wire-form part dicts). ``images`` adds file handles from
        ``client.files.prepare_image()`` after the text: ``chat.append("user", "What is in
        this picture?", images=[handle])``. ``chat.append(result)`` adds a prediction result
        (anything with a ``content: str``) as an assistant message; ``chat.append(message)``
        adds a :class:`ChatMessage`.
        """
        if isinstance(role, str):
            if content is None:
                raise LMStudioUsageError(
                    f"chat.append({role!r}) needs content: a str, a part, or a list of parts."
                )
            message = _make_message(role, content, images)
        elif images is not None:
            raise LMStudioUsageError(
                "chat.append(): images go with a role and text, e.g. "
                "chat.append('user', 'What is this?', images=[handle])."
            )
        elif content is not None:
            raise LMStudioUsageError(
                "chat.append(role, content) takes the role as a str such as 'user'; "
                f"got {type(role).__name__}."
            )
        elif isinstance(role, ChatMessage):
            message = _message_from_item(role)
        elif isinstance(getattr(role, "content", None), str):
            message = ChatMessage(role="assistant", content=[TextPart(text=role.content)])  # type: ignore[attr-defined]
        else:
            raise LMStudioUsageError(
                f"Cannot append {type(role).__name__} to a Chat; pass (role, content), a "
                "ChatMessage, or a prediction result."
            )
        self._messages.append(message)
        return message

    def add_user_message(
        self,
        content: str | Part | Iterable[Any],
        *,
        images: Sequence[FileHandle | FilePart] | None = None,
    ) -> ChatMessage:
        """Append a user message, with ``images`` (file handles) after its text if given."""
        return self.append("user", content, images=images)

    def add_system_prompt(self, content: str | Part | Iterable[Any]) -> ChatMessage:
        """Append a system message."""
        return self.append("system", content)

    def add_assistant_response(self, content: str | Part | Iterable[Any]) -> ChatMessage:
        """Append an assistant message."""
        return self.append("assistant", content)

    def require_user_message(self) -> None:
        """Raise :class:`LMStudioUsageError` unless the chat contains a user message."""
        if not any(m.role == "user" for m in self._messages):
            roles = [m.role for m in self._messages]
            raise LMStudioUsageError(
                "The chat has no user message, so the model has nothing to respond to "
                f"(roles present: {roles or 'none'}). Add one with chat.add_user_message(...)."
            )

    def __iter__(self) -> Iterator[ChatMessage]:
        return iter(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    @overload
    def __getitem__(self, index: int) -> ChatMessage: ...
    @overload
    def __getitem__(self, index: slice) -> list[ChatMessage]: ...
    def __getitem__(self, index: int | slice) -> ChatMessage | list[ChatMessage]:
        return self._messages[index]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Chat):
            return NotImplemented
        return self._messages == other._messages

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Chat([{', '.join(_brief(m) for m in self._messages)}])"


def _brief(message: ChatMessage) -> str:
    bits: list[str] = []
    for part in message.content:
        if isinstance(part, TextPart):
            text = part.text if len(part.text) <= 40 else part.text[:39] + "…"
            bits.append(repr(text))
        elif isinstance(part, FilePart):
            bits.append(f"<file {part.name}>")
        elif isinstance(part, ToolCallRequestPart):
            bits.append(f"<call {part.tool_call_request.name}>")
        else:
            bits.append(f"<result {part.content[:20]!r}>")
    return f"{message.role}: {' '.join(bits) or '<empty>'}"

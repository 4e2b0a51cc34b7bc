"""The simulated "model": deterministic replies, a toy tokenizer, embeddings, templates.

Everything here is a pure function so tests can compute expected outputs without a server.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "EMBEDDING_END_TOKEN",
    "EMBEDDING_START_TOKEN",
    "apply_prompt_template",
    "default_completion",
    "default_reasoning",
    "default_reply",
    "embed",
    "instance_for_schema",
    "split_words",
    "tokenize",
]

_GREETING = "Hello! I am the LM Studio simulator."
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_WORD_RE = re.compile(r"\S+\s*|\s+")
_MAX_COMPLETION_WORDS = 32

EMBEDDING_START_TOKEN = 101
"""The start marker embedding models put before the text's tokens (BERT's ``[CLS]`` id)."""
EMBEDDING_END_TOKEN = 102
"""The end marker embedding models put after the text's tokens (BERT's ``[SEP]`` id)."""


def _part_text(part: Mapping[str, Any]) -> str:
    kind = part.get("type")
    if kind == "text":
        return str(part.get("text", ""))
    if kind == "toolCallResult":
        return str(part.get("content", ""))
    if kind == "file":
        return f"<file:{part.get('name', '')}>"
    return ""


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content", [])
    if isinstance(content, str):
        return content
    return " ".join(t for t in (_part_text(p) for p in content if isinstance(p, Mapping)) if t)


def default_reply(history: Mapping[str, Any]) -> str:
    """The default model's deterministic reply to a wire-form ``ChatHistoryData``.

    * last message from a tool: ``"The tool returned: <results joined by ', '>."``
    * otherwise, with user text: ``"You said: <text of the last user message>"``
    * no user text at all: ``"Hello! I am the LM Studio simulator."``
    """
    messages = [m for m in history.get("messages", []) if isinstance(m, Mapping)]
    if messages and messages[-1].get("role") == "tool":
        results = [_part_text(p) for p in messages[-1].get("content", [])]
        return f"The tool returned: {', '.join(results)}."
    for message in reversed(messages):
        if message.get("role") == "user":
            text = " ".join(_message_text(message).split())
            if text:
                return f"You said: {text}"
    return _GREETING


def default_reasoning(history: Mapping[str, Any]) -> str:
    """The reasoning segment a reasoning model (``ModelSpec.reasoning``) emits first."""
    return f"The user wants a reply. I will answer: {default_reply(history)}"


def default_completion(prompt: str) -> str:
    """The default model's deterministic continuation of a raw prompt.

    It echoes the prompt's last words (at most 32), each preceded by a space; an empty prompt
    continues with the simulator greeting.
    """
    words = prompt.split()[-_MAX_COMPLETION_WORDS:]
    if not words:
        return _GREETING
    return "".join(f" {w}" for w in words)


def split_words(text: str) -> list[str]:
    """Fragment split used for streaming: one word plus its following whitespace each."""
    return _WORD_RE.findall(text)


def tokenize(text: str) -> list[int]:
    """Toy tokenizer: words and punctuation marks, each mapped to a stable id."""
    return [zlib.crc32(t.encode()) % 150_000 + 100 for t in _TOKEN_RE.findall(text)]


def embed(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector seeded from the SHA-256 of the text."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    vector = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def instance_for_schema(schema: Any, defs: Mapping[str, Any] | None = None) -> Any:
    """A minimal deterministic JSON value valid against a simple JSON schema.

    Supports ``const``, ``enum``, ``$ref`` to ``#/$defs``/``#/definitions``, ``anyOf``/``oneOf``
    (first branch), objects (every property, so ``required`` is always met), arrays
    (``minItems`` copies of the item), strings (within ``minLength``/``maxLength``),
    integers/numbers (the value closest to 0 within ``minimum``/``exclusiveMinimum`` and
    ``maximum``/``exclusiveMaximum``), booleans and null.
    """
    if not isinstance(schema, Mapping):
        return None
    if defs is None:
        defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return instance_for_schema(defs.get(ref.rsplit("/", 1)[-1], {}), defs)
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return instance_for_schema(schema[key][0], defs)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties", {})
        return {name: instance_for_schema(sub, defs) for name, sub in props.items()}
    if kind == "array":
        count = int(schema.get("minItems", 0))
        return [instance_for_schema(schema.get("items", {}), defs) for _ in range(count)]
    if kind == "string":
        shortest = int(schema.get("minLength", 0))
        longest = schema.get("maxLength")
        text = "string" if shortest <= len("string") else "x" * shortest
        return text[: max(int(longest), shortest)] if longest is not None else text
    if kind in ("integer", "number"):
        return _number_for_schema(schema, integer=kind == "integer")
    if kind == "boolean":
        return True
    return None


def _number_for_schema(schema: Mapping[str, Any], *, integer: bool) -> int | float:
    """The number closest to 0 within ``minimum``/``exclusiveMinimum`` and
    ``maximum``/``exclusiveMaximum`` (the lower bound wins if they contradict)."""
    value: float = 0
    high, exclusive_high = schema.get("maximum"), schema.get("exclusiveMaximum")
    if high is not None and value > high:
        value = math.floor(high) if integer else high
    if exclusive_high is not None and value >= exclusive_high:
        value = math.ceil(exclusive_high) - 1 if integer else exclusive_high - 1
    low, exclusive_low = schema.get("minimum"), schema.get("exclusiveMinimum")
    if low is not None and value < low:
        value = math.ceil(low) if integer else low
    if exclusive_low is not None and value <= exclusive_low:
        value = math.floor(exclusive_low) + 1 if integer else exclusive_low + 1
    return int(value) if integer else value


def _render_part(part: Mapping[str, Any]) -> str:
    if part.get("type") == "toolCallRequest":
        request = part.get("toolCallRequest", {})
        body = {"name": request.get("name"), "arguments": request.get("arguments", {})}
        return f"<tool_call>\n{json.dumps(body)}\n</tool_call>"
    if part.get("type") == "toolCallResult":
        return f"<tool_response>\n{part.get('content', '')}\n</tool_response>"
    return _part_text(part)


def apply_prompt_template(
    history: Mapping[str, Any], tools: Sequence[Mapping[str, Any]] | None = None
) -> str:
    """ChatML formatting (as used by Qwen models), ending with an open assistant turn."""
    out: list[str] = []
    if tools:
        listing = "\n".join(json.dumps(t) for t in tools)
        out.append(f"<|im_start|>system\n# Tools\n<tools>\n{listing}\n</tools><|im_end|>\n")
    for message in history.get("messages", []):
        if not isinstance(message, Mapping):
            continue
        parts = message.get("content", [])
        text = "".join(_render_part(p) for p in parts if isinstance(p, Mapping))
        out.append(f"<|im_start|>{message.get('role', 'user')}\n{text}<|im_end|>\n")
    out.append("<|im_start|>assistant\n")
    return "".join(out)

"""Test helpers for the simulator: a tiny raw websocket client and lms.json validation.

The raw client deliberately speaks the protocol by hand (not through our SDK, which is
written concurrently) so these tests pin the simulator's wire behaviour on their own.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import jsonschema

from lmstudio_async.testing import Simulator

ABSENT: Any = object()


class RawClient:
    """One namespace socket driven frame by frame."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        self.ws = ws
        self._next_id = 1

    def next_id(self) -> int:
        value = self._next_id
        self._next_id += 1
        return value

    async def send(self, frame: Any) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def recv(self, wait: float = 2.0) -> dict[str, Any]:
        """The next text frame as JSON; TimeoutError if none arrives in time."""
        with anyio.fail_after(wait):
            msg = await self.ws.receive()
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"socket ended: {msg.type!r}")
        frame: dict[str, Any] = json.loads(msg.data)
        return frame

    async def recv_text(self, wait: float = 2.0) -> str:
        with anyio.fail_after(wait):
            msg = await self.ws.receive()
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"socket ended: {msg.type!r}")
        return str(msg.data)

    async def expect_silence(self, seconds: float = 0.05) -> None:
        """Assert nothing arrives for a short while."""
        with anyio.move_on_after(seconds):
            msg = await self.ws.receive()
            raise AssertionError(f"unexpected frame: {msg.data!r}")

    async def rpc(self, endpoint: str, parameter: Any = ABSENT) -> dict[str, Any]:
        """Call and return the ``rpcResult``/``rpcError`` frame."""
        call_id = self.next_id()
        frame: dict[str, Any] = {"type": "rpcCall", "endpoint": endpoint, "callId": call_id}
        if parameter is not ABSENT:
            frame["parameter"] = parameter
        await self.send(frame)
        reply = await self.recv()
        assert reply.get("callId") == call_id, reply
        return reply

    async def create_channel(self, endpoint: str, parameter: Any = ABSENT) -> int:
        channel_id = self.next_id()
        frame: dict[str, Any] = {
            "type": "channelCreate",
            "endpoint": endpoint,
            "channelId": channel_id,
        }
        if parameter is not ABSENT:
            frame["creationParameter"] = parameter
        await self.send(frame)
        return channel_id

    async def channel_packets(
        self, channel_id: int, wait: float = 5.0
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Packets of one channel until its terminal frame: (messages, terminal frame)."""
        packets: list[dict[str, Any]] = []
        with anyio.fail_after(wait):
            while True:
                frame = await self.recv(wait)
                if frame.get("channelId") != channel_id:
                    continue
                if frame["type"] == "channelSend":
                    packets.append(frame["message"])
                elif frame["type"] in ("channelClose", "channelError"):
                    return packets, frame


@asynccontextmanager
async def raw_client(
    sim: Simulator,
    namespace: str = "llm",
    *,
    identifier: str = "guest:raw-test",
    passkey: str = "raw-passkey",
    authenticate: bool = True,
) -> AsyncIterator[RawClient]:
    """Connect (and by default authenticate) one namespace socket."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{sim.base_url}/{namespace}") as ws,
    ):
        client = RawClient(ws)
        if authenticate:
            await client.send(
                {"authVersion": 1, "clientIdentifier": identifier, "clientPasskey": passkey}
            )
            assert await client.recv() == {"success": True}
        yield client


def llm_query(identifier: str) -> dict[str, Any]:
    return {"type": "query", "query": {"identifier": identifier}}


def predict_parameter(
    text: str, model: str = "qwen2.5-7b-instruct", fields: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A ``predict`` creation parameter with one user message and an apiOverride layer."""
    return {
        "modelSpecifier": llm_query(model),
        "history": {"messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]},
        "predictionConfigStack": {
            "layers": [{"layerName": "apiOverride", "config": {"fields": fields or []}}]
        },
    }


# ---- lms.json validation -------------------------------------------------------------------

# Fields added after the schema generation of lms.json (PROTOCOL.md §6 item 16).
_NEW_MODEL_INFO_FIELDS = (
    "publisher",
    "indexedModelIdentifier",
    "deviceIdentifier",
    "ttlMs",
    "lastUsedTime",
    "quantization",
    "variants",
    "selectedVariant",
)


def strip_newer_fields(value: Any) -> Any:
    """A copy without the fields lms.json predates, so its strict objects accept the rest."""
    value = copy.deepcopy(value)

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, dict):
            return
        if "modelKey" in node:
            for key in _NEW_MODEL_INFO_FIELDS:
                node.pop(key, None)
        if "reasoningType" in node and "tokensCount" in node:
            node.pop("isStructural", None)
            node.pop("tokens", None)
        if node.get("type") == "promptProcessingProgress":
            node.pop("details", None)
        if "stopReason" in node:
            node.pop("stopString", None)
            node.pop("totalTimeSec", None)
        for child in node.values():
            walk(child)

    walk(value)
    return value


class LmsSchema:
    """Validators for named ``lms.json`` definitions.

    lms.json names definitions with slashes (``llm/rpc/listLoaded/returns``) and refers to
    them as ``#/definitions/llm/rpc/...``, which standard JSON-pointer resolution would read
    as nested keys. This rewrites every reference to a flat name first.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        self._defs: dict[str, Any] = schema["definitions"]
        self._names: dict[str, str] = {}
        self._flat: dict[str, Any] = {}

    def has(self, name: str) -> bool:
        return name in self._defs

    def _target(self, ref: str) -> Any:
        path = ref.removeprefix("#/definitions/")
        key = max((k for k in self._defs if path == k or path.startswith(k + "/")), key=len)
        node = self._defs[key]
        for part in filter(None, path[len(key) :].split("/")):
            node = node[part]
        return node

    def _rewrite(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self._rewrite(n) for n in node]
        if not isinstance(node, dict):
            return node
        out = {k: self._rewrite(v) for k, v in node.items() if k != "$ref"}
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            if ref not in self._names:
                name = f"d{len(self._names)}"
                self._names[ref] = name
                self._flat[name] = {}
                self._flat[name] = self._rewrite(self._target(ref))
            out["$ref"] = f"#/definitions/{self._names[ref]}"
        return out

    def validate(self, name: str, instance: Any) -> None:
        """Validate ``instance`` (newer fields stripped) against definition ``name``."""
        root = self._rewrite(self._defs[name])
        schema = {**root, "definitions": self._flat}
        jsonschema.Draft7Validator(schema).validate(strip_newer_fields(instance))


# Envelope shapes the server may send (PROTOCOL.md §2.3), strict.
_INT = {"type": "integer"}
SERVER_ENVELOPE_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {
            "type": "object",
            "properties": {"type": {"const": "channelSend"}, "channelId": _INT, "message": {}},
            "required": ["type", "channelId", "message"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"type": {"const": "channelClose"}, "channelId": _INT},
            "required": ["type", "channelId"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "type": {"const": "channelError"},
                "channelId": _INT,
                "error": {"type": "object"},
            },
            "required": ["type", "channelId", "error"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"type": {"const": "rpcResult"}, "callId": _INT, "result": {}},
            "required": ["type", "callId"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "type": {"const": "rpcError"},
                "callId": _INT,
                "error": {"type": "object"},
            },
            "required": ["type", "callId", "error"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "type": {"const": "communicationWarning"},
                "warning": {"type": "string"},
                "kind": {"type": "string"},
            },
            "required": ["type", "warning"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"type": {"const": "keepAliveAck"}},
            "required": ["type"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"success": {"const": True}},
            "required": ["success"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"success": {"const": False}, "error": {"type": "string"}},
            "required": ["success", "error"],
            "additionalProperties": False,
        },
    ]
}


def validate_envelope(frame: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(SERVER_ENVELOPE_SCHEMA).validate(frame)

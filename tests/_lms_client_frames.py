"""Validate every frame a client sent against the protocol's JSON schema (lms.json)."""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

import jsonschema
from _protocol_schema import SCHEMA_PATH

from lmstudio_async.testing import Simulator

# Endpoints newer than lms.json's generation (PROTOCOL.md §6 item 16): no schema to check.
_NEWER_ENDPOINTS = frozenset({"completeRawText", "getBasePredictionConfig"})


@cache
def _validator() -> Any:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema, jsonschema.validators.validator_for(schema)


def _check(definition: str, value: Any) -> None:
    schema, cls = _validator()
    if definition not in schema["definitions"]:
        return
    pointer = definition.replace("~", "~0").replace("/", "~1")
    cls({"definitions": schema["definitions"], "$ref": f"#/definitions/{pointer}"}).validate(value)


def _strip_newer_fields(value: Any) -> Any:
    """Drop fields the newest protocol added that the older schema rejects."""
    value = copy.deepcopy(value)
    if not isinstance(value, dict):
        return value
    # LM Link (2.0): a device on loads, unloads, estimates and model queries.
    value.pop("deviceIdentifier", None)
    for key in ("specifier", "modelSpecifier"):
        query = (value.get(key) or {}).get("query")
        if isinstance(query, dict):
            query.pop("deviceIdentifier", None)
    for message in (value.get("history") or {}).get("messages", []):
        for part in message.get("content", []):
            if part.get("type") == "toolCallResult":
                part.pop("name", None)
    return value


def assert_client_frames_valid(sim: Simulator) -> None:
    """Every recorded client frame is a known envelope whose payload matches lms.json."""
    if not SCHEMA_PATH.is_file():
        return  # not in this clone (see _protocol_schema): test_protocol_frame_check says so
    for namespace in ("llm", "embedding", "system", "files", "repository"):
        # Frames arrive in order per namespace; a channel id maps to its latest channelCreate.
        channels: dict[int, str] = {}
        for frame in sim.frames_received(namespace):
            check_frame(namespace, frame, channels)


def check_frame(namespace: str, frame: dict[str, Any], channels: dict[int, str]) -> None:
    if "authVersion" in frame:
        assert set(frame) == {"authVersion", "clientIdentifier", "clientPasskey"}, frame
        return
    kind = frame["type"]
    if kind == "rpcCall":
        assert set(frame) <= {"type", "endpoint", "callId", "parameter"}, frame
        if frame["endpoint"] not in _NEWER_ENDPOINTS and "parameter" in frame:
            _check(
                f"{namespace}/rpc/{frame['endpoint']}/parameter",
                _strip_newer_fields(frame["parameter"]),
            )
    elif kind == "channelCreate":
        endpoint = frame["endpoint"]
        channels[frame["channelId"]] = endpoint
        if endpoint not in _NEWER_ENDPOINTS:
            _check(
                f"{namespace}/channel/{endpoint}/creationParameter",
                _strip_newer_fields(frame.get("creationParameter", {})),
            )
    elif kind == "channelSend":
        endpoint = channels.get(frame["channelId"], "")
        if endpoint and endpoint not in _NEWER_ENDPOINTS:
            _check(f"{namespace}/channel/{endpoint}/toServerPacket", frame["message"])
    else:
        raise AssertionError(f"unexpected client frame type {kind!r}: {frame}")

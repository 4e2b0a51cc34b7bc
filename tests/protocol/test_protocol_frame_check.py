"""The schema check every simulator-backed test runs on client frames does reject bad frames."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from _lms_client_frames import check_frame
from _protocol_schema import SCHEMA_MISSING, SCHEMA_PATH

pytestmark = pytest.mark.skipif(not SCHEMA_PATH.is_file(), reason=SCHEMA_MISSING)


def test_a_valid_predict_frame_passes() -> None:
    frame: dict[str, Any] = {
        "type": "channelCreate",
        "endpoint": "predict",
        "channelId": 1,
        "creationParameter": {
            "modelSpecifier": {"type": "query", "query": {"identifier": "m"}},
            "history": {
                "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
            },
            "predictionConfigStack": {"layers": []},
        },
    }
    check_frame("llm", frame, {})


@pytest.mark.parametrize(
    "frame",
    [
        # No model specifier.
        {
            "type": "channelCreate",
            "endpoint": "predict",
            "channelId": 1,
            "creationParameter": {
                "history": {"messages": []},
                "predictionConfigStack": {"layers": []},
            },
        },
        # An unknown KV layer name: LM Studio would drop the request without an answer.
        {
            "type": "channelCreate",
            "endpoint": "predict",
            "channelId": 1,
            "creationParameter": {
                "modelSpecifier": {"type": "query", "query": {}},
                "history": {"messages": []},
                "predictionConfigStack": {
                    "layers": [{"layerName": "mine", "config": {"fields": []}}]
                },
            },
        },
        # A ttl of zero is invalid.
        {
            "type": "channelCreate",
            "endpoint": "loadModel",
            "channelId": 1,
            "creationParameter": {
                "modelKey": "m",
                "ttlMs": 0,
                "loadConfigStack": {"layers": []},
            },
        },
    ],
)
def test_invalid_frames_are_rejected(frame: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        check_frame("llm", frame, {})


def test_unknown_envelope_types_are_rejected() -> None:
    with pytest.raises(AssertionError, match="unexpected client frame"):
        check_frame("llm", {"type": "channelClose", "channelId": 1}, {})

"""Which request a rejection is about: LM Studio quotes the refused parameter (pure functions)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from lmstudio_async._mux._rejections import (
    NO_PARAMETER,
    echoed_parameter,
    readable_warning,
    same_json,
    sent_parameter,
    warning_kind,
)
from lmstudio_async._protocol.envelope import encode_channel_create, encode_rpc_call

PREDICT: dict[str, Any] = {
    "modelSpecifier": {"type": "query", "query": {"identifier": "m"}},
    "history": {"messages": [{"role": "user", "content": [{"type": "text", "text": "é 😀"}]}]},
    "temperature": 0.7,
    "whole": 1.0,
}


def _lm_studio_warning(parameter: object, *, rpc: bool = False) -> str:
    # ServerPort's `text` template: JSON.stringify of the value, newlines of the template
    # folded into spaces, the Zod error after a blank line; JavaScript writes 1.0 as 1.
    quoted = json.dumps(parameter, separators=(",", ":"), ensure_ascii=False).replace("1.0", "1")
    if rpc:
        return (
            "Received invalid parameter for rpcCall, endpointName = tokenize, "
            f"parameter = {quoted}. Zod error:\n\n  - parameter.inputString: Required"
        )
    return (
        "Received invalid creationParameter for channel, endpointName = predict, "
        f"creationParameter = {quoted}. Zod error:\n\n  - creationParameter.history: Invalid"
    )


def test_the_quoted_creation_parameter_equals_what_was_sent() -> None:
    frame = encode_channel_create("predict", 7, PREDICT)
    assert echoed_parameter(_lm_studio_warning(PREDICT)) == sent_parameter(frame)


def test_the_quoted_rpc_parameter_equals_what_was_sent() -> None:
    parameter = {"specifier": {"type": "instanceReference", "instanceReference": "x"}}
    frame = encode_rpc_call("tokenize", 3, parameter)
    assert echoed_parameter(_lm_studio_warning(parameter, rpc=True)) == sent_parameter(frame)


def test_a_different_parameter_does_not_match() -> None:
    other = {**PREDICT, "temperature": 0.8}
    frame = encode_channel_create("predict", 7, other)
    assert echoed_parameter(_lm_studio_warning(PREDICT)) != sent_parameter(frame)


def test_text_that_looks_like_the_wording_inside_the_parameter_is_not_confusing() -> None:
    tricky = {"text": 'parameter = {"x": 1}. Zod error: creationParameter = []'}
    assert echoed_parameter(_lm_studio_warning(tricky)) == tricky


@pytest.mark.parametrize(
    "warning",
    [
        "Received invalid creationParameter for channel, endpointName = predict",
        "Received invalid creationParameter for channel, endpointName = predict, "
        "creationParameter = undefined. Zod error:\n\n  - Required",
        'Received invalid parameter for rpcCall, endpointName = x, parameter = {"cut": ',
        "Received channelCreate for unknown endpoint, endpoint = predict",
    ],
    ids=["no quote", "undefined", "cut short", "unknown endpoint"],
)
def test_a_warning_without_a_usable_quote_names_nothing(warning: str) -> None:
    assert echoed_parameter(warning) is NO_PARAMETER


def test_lone_surrogates_quoted_by_lm_studio_parse() -> None:
    warning = (
        "Received invalid parameter for rpcCall, endpointName = x, "
        'parameter = {"a":"\\ud83d"}. Zod error:\n\nbad'
    )
    assert echoed_parameter(warning) == {"a": "\ud83d"}


def test_a_request_without_a_parameter_has_none_to_compare() -> None:
    frame = encode_rpc_call("listLoaded", 1, msgspec.UNSET)
    assert sent_parameter(frame) is NO_PARAMETER


def test_a_readable_warning_shortens_the_quoted_parameter() -> None:
    huge = {**PREDICT, "image": "A" * 5_000_000}
    readable = readable_warning(_lm_studio_warning(huge))
    assert readable == (
        "Received invalid creationParameter for channel, endpointName = predict, "
        "creationParameter = {...}. Zod error: - creationParameter.history: Invalid"
    )


def test_a_readable_warning_is_bounded_without_a_quote() -> None:
    readable = readable_warning("Something odd: " + "x" * 10_000)
    assert len(readable) == 1000
    assert readable.endswith("...")


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ({"x": 1}, {"x": 1.0}, True),
        ({"x": 2**53 + 1}, {"x": 2**53}, True),  # JavaScript rounds it so
        ({"x": 2**53 + 2}, {"x": 2**53}, False),
        ({"x": 10**400}, {"x": 1e308}, False),
        ({"a": 1, "b": [2]}, {"b": [2], "a": 1}, True),
        ({"x": True}, {"x": 1}, False),
        ({"x": False}, {"x": 0}, False),
        ([1, 2], [1, 2, 3], False),
        ({"x": None}, {}, False),
        ("1", 1, False),
    ],
)
def test_parameters_are_compared_as_json_values(a: object, b: object, same: bool) -> None:
    assert same_json(a, b) is same


@pytest.mark.parametrize(
    ("kind", "warning", "expected"),
    [
        ("rpcParameterTypeError", "anything", "rpcParameterTypeError"),
        (
            None,
            "Received invalid creationParameter for channel, endpointName = predict, ...",
            "channelCreationParameterTypeError",
        ),
        (
            None,
            "Received channelCreate for unknown endpoint, endpoint = completeRawText",
            "channelEndpointUnknown",
        ),
        (None, "Received rpcCall for unhandled endpoint, endpoint = x", "rpcEndpointUnhandled"),
        (None, "Received channelSend for unknown channel, channelId = 4", "channelUnknown"),
        (None, "Something else", "unknown"),
    ],
)
def test_a_warning_without_a_kind_is_read_from_its_wording(
    kind: str | None, warning: str, expected: str
) -> None:
    assert warning_kind(kind, warning) == expected

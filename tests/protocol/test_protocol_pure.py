"""Sans-I/O pieces without an event loop: envelope codec, packets, auth, accumulator."""

from __future__ import annotations

import json

import msgspec
import pytest

from lmstudio_async import LMStudioUsageError
from lmstudio_async._prediction import PredictionAccumulator, _accumulator
from lmstudio_async._protocol.auth import resolve_credentials
from lmstudio_async._protocol.envelope import (
    ChannelSendIn,
    RpcResultIn,
    decode_envelope,
    encode_channel_create,
    encode_rpc_call,
)
from lmstudio_async._protocol.packets import (
    PREDICT_TYPES,
    FragmentPacket,
    PredictSuccess,
    UnknownPacket,
    decode_packet,
    predict_packets,
)
from lmstudio_async.types import PredictionFragment

MODEL_INFO = {
    "type": "llm",
    "modelKey": "m",
    "format": "gguf",
    "displayName": "M",
    "path": "p/m",
    "sizeBytes": 1,
    "identifier": "m",
    "instanceReference": "ref",
    "vision": False,
    "trainedForToolUse": False,
    "maxContextLength": 4096,
    "contextLength": 4096,
}


def test_void_parameters_are_omitted_not_null() -> None:
    assert json.loads(encode_rpc_call("listLoaded", 7)) == {
        "type": "rpcCall",
        "endpoint": "listLoaded",
        "callId": 7,
    }
    frame = json.loads(encode_channel_create("predict", 3, {"a": 1}))
    assert frame == {
        "type": "channelCreate",
        "endpoint": "predict",
        "channelId": 3,
        "creationParameter": {"a": 1},
    }


def test_envelope_keeps_the_payload_raw_for_its_owner() -> None:
    envelope = decode_envelope(b'{"type":"channelSend","channelId":3,"message":{"type":"x"}}')
    assert isinstance(envelope, ChannelSendIn)
    assert envelope.channel_id == 3
    assert bytes(envelope.message) == b'{"type":"x"}'
    void = decode_envelope('{"type":"rpcResult","callId":1}')
    assert isinstance(void, RpcResultIn)
    assert msgspec.json.decode(void.result) is None


@pytest.mark.parametrize("frame", ["{", '{"type":"fromTheFuture"}', "[]", '"text"'])
def test_unusable_envelopes_raise_decode_errors(frame: str) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_envelope(frame)


def test_packets_decode_to_types_and_unknown_types_are_skipped() -> None:
    fragment = decode_packet(
        predict_packets,
        msgspec.Raw(b'{"type":"fragment","fragment":{"content":"hi","tokensCount":1}}'),
        PREDICT_TYPES,
    )
    assert isinstance(fragment, FragmentPacket)
    assert fragment.fragment == PredictionFragment(content="hi", tokens_count=1)
    legacy = decode_packet(
        predict_packets, msgspec.Raw(b'{"type":"fragment","fragment":"old"}'), PREDICT_TYPES
    )
    assert isinstance(legacy, FragmentPacket)
    assert legacy.fragment == "old"
    unknown = decode_packet(
        predict_packets, msgspec.Raw(b'{"type":"newThing","x":1}'), PREDICT_TYPES
    )
    assert unknown == UnknownPacket("newThing")
    # A known packet that is malformed is a real protocol error, not something to skip.
    with pytest.raises(msgspec.ValidationError):
        decode_packet(predict_packets, msgspec.Raw(b'{"type":"success"}'), PREDICT_TYPES)


def _success() -> PredictSuccess:
    packet = {
        "type": "success",
        "stats": {"stopReason": "eosFound"},
        "modelInfo": MODEL_INFO,
        "loadModelConfig": {"fields": [{"key": "llm.load.contextLength", "value": 4096}]},
        "predictionConfig": {"fields": [{"key": "llm.prediction.temperature", "value": 0.5}]},
    }
    decoded = predict_packets.decode(json.dumps(packet))
    assert isinstance(decoded, PredictSuccess)
    return decoded


def test_accumulator_joins_plain_content_once() -> None:
    accumulator = PredictionAccumulator()
    for text in ["Hel", "lo", "!"]:
        accumulator.add(PredictionFragment(content=text, tokens_count=1))
    result = accumulator.finish(_success())
    assert result.content == result.non_reasoning_content == "Hello!"
    assert result.reasoning_content == ""
    assert result.load_config.context_length == 4096
    assert result.prediction_config.temperature == 0.5


def test_reading_the_content_after_every_fragment_copies_each_piece_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The README's `if len(prediction.content) > 200` inside the loop: each read may join only
    # the pieces that arrived since the last read, never the text so far again (that was
    # quadratic). Counted in characters joined, not timed; benchmarks/content_reads.py times it.
    joined = 0

    def counting_join(pieces: list[str]) -> str:
        nonlocal joined
        joined += sum(map(len, pieces))
        return "".join(pieces)

    monkeypatch.setattr(_accumulator, "_join", counting_join)
    accumulator = PredictionAccumulator()
    pieces = [f"w{i} " for i in range(2_000)]
    for piece in pieces:
        accumulator.add(PredictionFragment(content=piece, tokens_count=1))
        accumulator.add(PredictionFragment(content="!", tokens_count=1))
        assert accumulator.content.endswith(piece + "!")
    text = "".join(piece + "!" for piece in pieces)
    assert accumulator.content == text
    assert accumulator.content is accumulator.content, "an unchanged text is not rebuilt"
    assert joined <= len(text), f"{joined} characters joined for {len(text)} of text"
    assert accumulator.finish(_success()).content == text


def test_accumulator_splits_reasoning_like_lm_studio() -> None:
    accumulator = PredictionAccumulator()
    fragments = [
        PredictionFragment(content="Pre ", reasoning_type="none"),
        PredictionFragment(content="<think>", reasoning_type="reasoningStartTag"),
        PredictionFragment(content="hmm", reasoning_type="reasoning"),
        PredictionFragment(content="[s]", reasoning_type="reasoning", is_structural=True),
        PredictionFragment(content="</think>", reasoning_type="reasoningEndTag"),
        PredictionFragment(content="answer", reasoning_type="none"),
    ]
    for fragment in fragments:
        accumulator.add(fragment)
    result = accumulator.finish(_success())
    assert result.content == "Pre <think>hmm[s]</think>answer"
    assert result.reasoning_content == "hmm"
    assert result.non_reasoning_content == "Pre answer"


def test_credentials_from_a_token_and_guests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LM_API_TOKEN", raising=False)
    monkeypatch.delenv("LMSTUDIO_API_TOKEN", raising=False)
    token = resolve_credentials(" sk-lm-Ab12Cd34:Ef56Gh78Ij90Kl12Mn34 ")
    assert (token.identifier, token.passkey) == ("Ab12Cd34", "Ef56Gh78Ij90Kl12Mn34")
    assert "Ef56" not in repr(token)
    first, second = resolve_credentials(None), resolve_credentials("")
    assert first.identifier.startswith("guest:")
    assert first.identifier != second.identifier
    with pytest.raises(LMStudioUsageError, match="sk-lm-"):
        resolve_credentials("sk-lm-short:short")


def test_enumeration_values_from_newer_servers_are_kept_not_fatal() -> None:
    fragment = decode_packet(
        predict_packets,
        msgspec.Raw(b'{"type":"fragment","fragment":{"content":"x","reasoningType":"dreaming"}}'),
        PREDICT_TYPES,
    )
    assert isinstance(fragment, FragmentPacket)
    assert isinstance(fragment.fragment, PredictionFragment)
    assert str(fragment.fragment.reasoning_type) == "dreaming"
    success = dict(json.loads(msgspec.json.encode(_success())), type="success")
    success["stats"] = {"stopReason": "outOfCoffee", "predictedTokensCount": 3}
    packet = decode_packet(
        predict_packets, msgspec.Raw(json.dumps(success).encode()), PREDICT_TYPES
    )
    assert isinstance(packet, PredictSuccess)
    assert str(packet.stats.stop_reason) == "outOfCoffee"
    assert packet.stats.predicted_tokens_count == 3
    # Anything else malformed in a known packet is still an error.
    broken = dict(success, modelInfo={"type": "llm"})
    with pytest.raises(msgspec.ValidationError):
        decode_packet(predict_packets, msgspec.Raw(json.dumps(broken).encode()), PREDICT_TYPES)

"""Odd text from the server, as bytes over a real loopback websocket: invalid UTF-8 and lone
UTF-16 surrogate escapes. Text arrives as LM Studio meant it, nothing is dropped silently, and
no Python codec error reaches the user."""

from __future__ import annotations

import copy
from typing import Any

import anyio
import pytest

import lmstudio_async as lms
from reliability.raw_server import SUCCESS, ServerEnd, serve_raw

pytestmark = pytest.mark.anyio

MODEL_INFO: dict[str, Any] = SUCCESS["modelInfo"]
FRAGMENT = (
    b'{"type":"channelSend","channelId":%d,"message":{"type":"fragment",'
    b'"fragment":{"content":"%s","tokensCount":1}}}'
)


def _fragment(channel_id: int, content: bytes) -> bytes:
    return FRAGMENT % (channel_id, content)


def _llm_server(fragments: list[bytes], *, version: bytes = b'"0.3.30"') -> Any:
    """A handler answering getModelInfo and version, and a prediction with raw fragments."""

    async def handler(end: ServerEnd) -> None:
        await end.accept_auth()
        while True:
            frame = await end.receive_json()
            if frame["type"] == "rpcCall" and frame["endpoint"] == "getModelInfo":
                await end.send_json(
                    {"type": "rpcResult", "callId": frame["callId"], "result": MODEL_INFO}
                )
            elif frame["type"] == "rpcCall" and frame["endpoint"] == "version":
                await end.send(
                    b'{"type":"rpcResult","callId":%d,"result":{"version":%s,"build":1}}'
                    % (frame["callId"], version)
                )
            elif frame["type"] == "channelCreate":
                channel_id = frame["channelId"]
                for content in fragments:
                    await end.send(_fragment(channel_id, content))
                success = copy.deepcopy(SUCCESS)
                success["stats"]["predictedTokensCount"] = len(fragments)
                message = {"type": "channelSend", "channelId": channel_id, "message": success}
                await end.send_json(message)
                await end.send_json({"type": "channelClose", "channelId": channel_id})

    return handler


async def _predict(fragments: list[bytes]) -> tuple[list[str], lms.PredictionResult[str]]:
    async with (
        serve_raw(_llm_server(fragments)) as server,
        lms.LMStudioClient(server.base_url) as client,
    ):
        model = await client.llm.model()
        with anyio.fail_after(10):
            prediction = model.respond("go")
            seen = [fragment.content async for fragment in prediction]
            result = await prediction
            # And awaited without iterating, on a fresh handle.
            assert (await model.respond("again")).content == result.content
        assert client._open_channel_count() == 0
        return seen, result


async def test_invalid_utf8_in_a_fragment_becomes_replacement_characters() -> None:
    seen, result = await _predict([b"caf\xc3\xa9 ", b"br\xffoken", b" end"])
    assert result.content == "café br\ufffdoken end"
    assert "".join(seen) == result.content
    assert result.stats.stop_reason == "eosFound"


async def test_a_surrogate_pair_split_across_fragments_is_joined() -> None:
    seen, result = await _predict([b"smile ", b"\\ud83d", b"\\ude00", b" done"])
    assert result.content == "smile \U0001f600 done"
    assert "".join(seen) == result.content, "iteration and result agree"
    assert result.stats.predicted_tokens_count == 4


async def test_truly_lone_surrogates_become_replacement_characters() -> None:
    seen, result = await _predict([b"a\\ude00b", b"c\\ud83d", b"d", b"e\\ud83d"])
    assert result.content == "a\ufffdbc\ufffdde\ufffd"
    # A stream that ends on half a pair hands the U+FFFD out as a last fragment too.
    assert "".join(seen) == result.content, "iteration and result agree"
    for text in seen:
        text.encode("utf-8")  # nothing the user gets is unencodable


@pytest.mark.parametrize("version", [b'"0.3.\\ud83d"', b'"0.3.\xff"'])
async def test_odd_text_in_an_rpc_result_is_delivered(version: bytes) -> None:
    async with (
        serve_raw(_llm_server([], version=version)) as server,
        lms.LMStudioClient(server.base_url) as client,
    ):
        with anyio.fail_after(10):  # not the 60 s RPC timeout
            answer = await client.system.version()
    assert answer.version == "0.3.\ufffd"


async def test_a_broken_frame_naming_a_channel_fails_that_prediction_only() -> None:
    async def handler(end: ServerEnd) -> None:
        await end.accept_auth()
        while True:
            frame = await end.receive_json()
            if frame["type"] == "rpcCall":
                result = MODEL_INFO if frame["endpoint"] == "getModelInfo" else {"version": "1"}
                await end.send_json(
                    {"type": "rpcResult", "callId": frame["callId"], "result": result}
                )
            elif frame["type"] == "channelCreate":
                channel_id = frame["channelId"]
                await end.send(_fragment(channel_id, b"one "))
                # Cut short: not JSON, but it says whose it is.
                await end.send(b'{"type":"channelSend","channelId":%d,"message":{"ty' % channel_id)

    async with serve_raw(handler) as server, lms.LMStudioClient(server.base_url) as client:
        model = await client.llm.model()
        with anyio.fail_after(10), pytest.raises(lms.LMStudioProtocolError, match="cannot read"):
            await model.respond("go")
        assert client._open_channel_count() == 0
        assert (await client.system.version()).version == "1", "the socket is still fine"

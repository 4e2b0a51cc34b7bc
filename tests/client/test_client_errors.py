"""Bad input and server errors: specific exceptions, readable messages, nothing left open."""

from __future__ import annotations

import pytest

import lmstudio_async as lms
from lmstudio_async.testing import Faults, ScriptedReply, Simulator

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"


async def test_unknown_model_key(simulator: Simulator, client: lms.LMStudioClient) -> None:
    with pytest.raises(lms.LMStudioModelNotFoundError) as caught:
        await client.llm.model("no-such-model")
    assert 'Cannot find a model with path "no-such-model"' in str(caught.value)
    assert "Available: qwen2.5-7b-instruct" in str(caught.value)
    assert caught.value.code == "generic.pathNotFound"
    assert isinstance(caught.value, lms.LMStudioServerError)
    await simulator.wait_for(lambda: client._open_channel_count() == 0)
    assert simulator.open_channel_count() == 0


async def test_model_unloaded_under_a_handle(
    simulator: Simulator, client: lms.LMStudioClient, model: lms.LLM
) -> None:
    connection = await client._connection("llm")
    await connection.call("unloadModel", {"identifier": MODEL})
    with pytest.raises(lms.LMStudioModelNotFoundError):
        await model.respond("anyone there?")
    await simulator.wait_for(lambda: client._open_channel_count() == 0)


async def test_unknown_preset(model: lms.LLM) -> None:
    with pytest.raises(lms.LMStudioPresetNotFoundError) as caught:
        await model.respond("hi", preset="no-such-preset")
    assert caught.value.code == "generic.presetNotFound"


async def test_server_error_mid_stream(
    simulator: Simulator, client: lms.LMStudioClient, model: lms.LLM
) -> None:
    simulator.script(
        MODEL, ScriptedReply(content="a b c d e f", faults=Faults(channel_error_after_fragments=2))
    )
    seen: list[str] = []

    async def consume() -> None:
        async for fragment in model.respond("go"):
            seen.append(fragment.content)

    with pytest.raises(lms.LMStudioServerError):
        await consume()
    assert len(seen) == 2
    assert client._open_channel_count() == 0
    assert (await model.respond("next")).content == "You said: next"


async def test_scripted_server_error_keeps_the_payload(
    simulator: Simulator, model: lms.LLM
) -> None:
    payload = {
        "title": "Engine crashed",
        "cause": "out of memory",
        "suggestion": "Use a smaller model",
    }
    simulator.script(MODEL, ScriptedReply(error=payload))
    with pytest.raises(lms.LMStudioServerError) as caught:
        await model.respond("go")
    message = str(caught.value)
    assert "Engine crashed" in message
    assert "out of memory" in message
    assert "smaller model" in message
    assert caught.value.payload["title"] == "Engine crashed"


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"temperature": -1}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"top_p_sampling": 2}, "top_p_sampling"),
        ({"temprature": 0.5}, "temperature"),
    ],
)
async def test_invalid_config_is_rejected_before_sending(
    simulator: Simulator, model: lms.LLM, config: dict[str, object], fragment: str
) -> None:
    with pytest.raises(lms.LMStudioConfigError, match=fragment):
        model.respond("hi", config=config)
    assert simulator.predictions == []


async def test_history_without_a_user_message(model: lms.LLM) -> None:
    with pytest.raises(lms.LMStudioUsageError, match="user"):
        model.respond([{"role": "system", "content": "Only a system prompt"}])


@pytest.mark.parametrize(
    "history", [[{"role": "wizard", "content": "hi"}], [{"role": "user", "content": 42}], 17]
)
async def test_invalid_history(model: lms.LLM, history: object) -> None:
    with pytest.raises(lms.LMStudioUsageError):
        model.respond(history)  # type: ignore[call-overload]


async def test_complete_takes_a_string(model: lms.LLM) -> None:
    with pytest.raises(lms.LMStudioUsageError, match="respond"):
        model.complete([{"role": "user", "content": "hi"}])  # type: ignore[call-overload]


async def test_stopped_server(client: lms.LMStudioClient, simulator: Simulator) -> None:
    model = await client.llm.model(MODEL)
    await simulator.aclose()
    with pytest.raises(lms.LMStudioConnectionError):
        await model.respond("anyone?")


async def test_garbage_from_the_server_is_survived(
    simulator: Simulator,
    client: lms.LMStudioClient,
    model: lms.LLM,
    caplog: pytest.LogCaptureFixture,
) -> None:
    faults = Faults(
        malformed_json_after_fragments=1,
        unknown_packet_after_fragments=2,
        unknown_channel_after_fragments=3,
        unknown_envelope_after_fragments=4,
    )
    simulator.script(MODEL, ScriptedReply(content="one two three four five six", faults=faults))
    result = await model.respond("go")
    assert result.content == "one two three four five six"
    assert (await model.respond("again")).content == "You said: again"
    assert any("cannot use" in r.getMessage() for r in caplog.records)


async def test_a_misspelled_callback_is_named_with_the_closest_valid_one(model: lms.LLM) -> None:
    with pytest.raises(lms.LMStudioUsageError, match="on_first_token"):
        model.respond("hi", on_frist_token=print)  # type: ignore[call-overload]
    with pytest.raises(lms.LMStudioUsageError, match="on_tool_call_request_start"):
        # Tool-call events exist only for chat predictions, not raw completions.
        model.complete("hi", on_tool_call_request_start=print)  # type: ignore[call-overload]
    with pytest.raises(lms.LMStudioUsageError, match="must be a function"):
        model.respond("hi", on_first_token="yes")  # type: ignore[call-overload]


# -- a prediction ended by channelError raises the documented LMStudioChannelError -------------


async def test_channel_error_raises_lmstudio_channel_error(
    simulator: Simulator, client: lms.LMStudioClient, model: lms.LLM
) -> None:
    simulator.script(
        MODEL, ScriptedReply(content="a b c d", faults=Faults(channel_error_after_fragments=2))
    )
    with pytest.raises(lms.LMStudioChannelError) as caught:
        await model.respond("go")
    assert isinstance(caught.value, lms.LMStudioServerError), "what callers catch today"
    await simulator.wait_for(lambda: client._open_channel_count() == 0)


# -- text that is not valid Unicode: a usage error naming where, nothing registered or sent -----

UNENCODABLE = "caf\udce9"  # what sys.argv holds for a non-UTF-8 argument


def _sent_requests(simulator: Simulator, namespace: str) -> int:
    return sum(
        1
        for frame in simulator.frames_received(namespace)
        if frame.get("type") in ("channelCreate", "rpcCall")
    )


@pytest.mark.parametrize("method", ["respond", "complete", "act"])
async def test_unencodable_prediction_input_is_a_usage_error(
    simulator: Simulator, client: lms.LMStudioClient, model: lms.LLM, method: str
) -> None:
    before = _sent_requests(simulator, "llm")

    def tool(x: int) -> int:
        """Doubles x."""
        return 2 * x

    async def call() -> object:
        if method == "respond":
            return await model.respond(UNENCODABLE)
        if method == "complete":
            return await model.complete(UNENCODABLE)
        return await model.act(UNENCODABLE, [tool])

    with pytest.raises(lms.LMStudioUsageError, match="not valid Unicode") as caught:
        await call()
    where = "at rawPrompt" if method == "complete" else "at history.messages[0].content[0].text"
    assert where in str(caught.value)
    assert not isinstance(caught.value, UnicodeError)
    assert client._open_channel_count() == 0, "nothing stays registered"
    assert _sent_requests(simulator, "llm") == before, "nothing was sent"
    assert (await model.respond("still fine")).content == "You said: still fine"


async def test_unencodable_embedding_input_in_a_list_names_the_item(
    simulator: Simulator, client: lms.LMStudioClient
) -> None:
    embedder = await client.embedding.model()
    before = _sent_requests(simulator, "embedding")
    with pytest.raises(lms.LMStudioUsageError, match="not valid Unicode at item 1 of the list"):
        await embedder.embed(["ok", UNENCODABLE])
    assert _sent_requests(simulator, "embedding") == before, "nothing of the batch was sent"
    assert client._pool.pending_call_count() == 0


async def test_unencodable_embedding_input_is_a_usage_error(
    simulator: Simulator, client: lms.LMStudioClient
) -> None:
    embedder = await client.embedding.model()
    before = _sent_requests(simulator, "embedding")
    with pytest.raises(lms.LMStudioUsageError, match="inputString"):
        await embedder.embed(UNENCODABLE)
    assert client._pool.pending_call_count() == 0
    assert _sent_requests(simulator, "embedding") == before

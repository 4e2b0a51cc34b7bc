"""Situations real LM Studio produces, each played through the public testing API.

Where the SDK client shows the effect plainly it drives the test; wire-level situations
(broken text, rejected channels, a cancel never acknowledged) are checked frame by frame with
the raw client, since what the bytes are is the point.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from sim_helpers import predict_parameter, raw_client

import lmstudio_async as lms
from lmstudio_async.testing import (
    Faults,
    Fragment,
    ModelSpec,
    ScriptedReply,
    ScriptedToolCall,
    Simulator,
    lmstudio_error,
)

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"


def _fragments(packets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p["fragment"] for p in packets if p["type"] == "fragment"]


# ---- reasoning, fragment by fragment -------------------------------------------------------


async def test_reasoning_without_its_start_tag_and_per_fragment_flags() -> None:
    reply = ScriptedReply(
        fragments=[
            Fragment("Let me think. ", "reasoning"),
            Fragment("</think>", "reasoningEndTag", structural=True),
            "The answer",
            Fragment(" [done]", structural=True),
        ]
    )
    async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
        sim.script(MODEL, reply)
        model = await client.llm.model(MODEL)
        stream = model.respond("Why?")
        seen = [(f.content, f.reasoning_type, f.is_structural) async for f in stream]
        result = await stream.result()
    assert seen == [
        ("Let me think. ", "reasoning", False),
        ("</think>", "reasoningEndTag", True),
        ("The answer", "none", False),
        (" [done]", "none", True),
    ]
    assert result.reasoning_content == "Let me think. "
    assert result.non_reasoning_content == "The answer"


# ---- context length ------------------------------------------------------------------------

TINY = ModelSpec(model_key="tiny-llm", default_context_length=64)


def _long_history(first: str, turns: int) -> lms.Chat:
    chat = lms.Chat.empty()
    chat.add_user_message(first)
    for n in range(turns):
        chat.add_assistant_response(f"reply number {n} with a few more words")
        chat.add_user_message(f"question number {n} with a few more words")
    return chat


async def test_stop_at_limit_stops_with_context_length_reached() -> None:
    async with Simulator(catalog=[TINY]) as sim, lms.LMStudioClient(sim.base_url) as client:
        sim.script("tiny-llm", ScriptedReply(content=" ".join(["word"] * 100)))
        model = await client.llm.model("tiny-llm")
        result = await model.respond("hi", config={"context_overflow_policy": "stopAtLimit"})
    stats = result.stats
    assert stats.stop_reason == "contextLengthReached"
    assert stats.prompt_tokens_count is not None
    assert stats.prompt_tokens_count + (stats.predicted_tokens_count or 0) == 64


async def test_truncate_middle_keeps_going_when_the_kept_prefix_fits() -> None:
    async with Simulator(catalog=[TINY]) as sim, lms.LMStudioClient(sim.base_url) as client:
        model = await client.llm.model("tiny-llm")
        result = await model.respond(_long_history("short start", 10))
    assert result.content == "You said: question number 9 with a few more words"
    assert result.stats.stop_reason == "eosFound"
    assert result.stats.prompt_tokens_count == 63  # truncated to fit the 64-token context


async def test_a_kept_prefix_larger_than_the_context_is_a_hard_error() -> None:
    huge_first = " ".join(["word"] * 100)
    async with Simulator(catalog=[TINY]) as sim, lms.LMStudioClient(sim.base_url) as client:
        model = await client.llm.model("tiny-llm")
        for policy in ("truncateMiddle", "stopAtLimit"):
            with pytest.raises(lms.LMStudioServerError, match="Trying to keep the first") as info:
                await model.respond(huge_first, config={"context_overflow_policy": policy})
            assert "context length of only 64 tokens" in str(info.value)
        rolling = await model.respond(
            huge_first, config={"context_overflow_policy": "rollingWindow"}
        )
    assert rolling.stats.stop_reason == "eosFound"
    assert [p.status for p in sim.predictions] == ["errored", "errored", "finished"]


async def test_context_enforcement_can_be_switched_off() -> None:
    async with (
        Simulator(catalog=[TINY], enforce_context_length=False) as sim,
        lms.LMStudioClient(sim.base_url) as client,
    ):
        model = await client.llm.model("tiny-llm")
        result = await model.respond(" ".join(["word"] * 100))
    assert result.stats.stop_reason == "eosFound"
    assert (result.stats.prompt_tokens_count or 0) > 100


# ---- loading, RPC endpoints, prompt progress -----------------------------------------------


async def test_a_load_reports_progress_then_fails() -> None:
    error = lmstudio_error("Failed to load model", cause="Out of memory")
    async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
        sim.faults = Faults(load_failure_at_progress=0.5, load_error=error)
        progress: list[float] = []
        with pytest.raises(lms.LMStudioServerError, match="Failed to load model"):
            await client.llm.load("google/gemma-3-4b", on_progress=progress.append)
        assert "google/gemma-3-4b" not in sim.loaded_identifiers()
    assert progress[-1] == 0.5
    assert progress == sorted(progress)


@pytest.mark.parametrize(
    ("fail_at", "expected"),
    [(0.0, []), (0.33, [0.25, 0.33]), (1.0, [0.25, 0.5, 0.75, 1.0])],
)
async def test_a_load_fails_after_reporting_exactly_the_chosen_progress(
    fail_at: float, expected: list[float]
) -> None:
    async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
        sim.faults = Faults(load_failure_at_progress=fail_at)
        progress: list[float] = []
        with pytest.raises(lms.LMStudioServerError):
            await client.llm.load("google/gemma-3-4b", on_progress=progress.append)
        assert "google/gemma-3-4b" not in sim.loaded_identifiers()
    assert progress == expected


@pytest.mark.parametrize("fail_at", [-0.1, 1.5, float("nan")])
def test_a_load_failure_fraction_outside_0_to_1_is_refused(fail_at: float) -> None:
    with pytest.raises(ValueError, match="fraction from 0 to 1"):
        Faults(load_failure_at_progress=fail_at)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rpc_delay": -1.0}, "rpc_delay must be a finite number of seconds"),
        ({"delay_before_first_fragment": float("inf")}, "finite number of seconds"),
        ({"stall_after_fragments": -1}, "whole number of fragments"),
        ({"drop_after_fragments": 1.5}, "whole number of fragments"),
        ({"stall_after_fragments": True}, "whole number of fragments"),
        ({"load_error": {"cause": "no title"}}, "lmstudio_error"),
    ],
)
def test_bad_fault_settings_are_refused_when_made(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Faults(**kwargs)
    faults = Faults()  # `sim.faults.<field> = ...` is documented too
    [(name, value)] = kwargs.items()
    with pytest.raises(ValueError, match=message):
        setattr(faults, name, value)
    assert getattr(faults, name) == getattr(Faults(), name)


async def test_one_rpc_fails_with_a_chosen_error_while_the_others_work() -> None:
    error = lmstudio_error("Server overloaded", cause="Too many requests")
    async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
        fault = sim.fault_endpoint("listLoaded", namespace="llm", error=error, times=1)
        with pytest.raises(lms.LMStudioServerError, match="Server overloaded"):
            await client.llm.list_loaded()
        assert [m.identifier for m in await client.embedding.list_loaded()] != []
        assert [m.identifier for m in await client.llm.list_loaded()] == [MODEL]
    assert fault.used == 1


async def test_an_error_aimed_at_a_channel_fails_that_prediction() -> None:
    async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
        model = await client.llm.model(MODEL)
        fault = sim.fault_endpoint("predict", error=lmstudio_error("Boom"), times=1)
        with pytest.raises(lms.LMStudioServerError, match="Boom"):
            await model.respond("hi")
        assert (await model.respond("hi")).content == "You said: hi"
    assert fault.used == 1


@pytest.mark.parametrize(
    ("endpoint", "kwargs", "message"),
    [
        ("predict", {"delay": 2.0}, "'predict' is a channel: raw_result= and delay= apply to RPCs"),
        ("predict", {"raw_result": b"1"}, "is a channel"),
        ("getModelInfo", {"reject": True, "delay": 1.0}, "reject=True refuses the request"),
        ("getModelInf", {"delay": 1.0}, "not an endpoint of any namespace.*'getModelInfo'"),
        ("predict", {"namespace": "LLM", "reject": True}, "unknown namespace 'LLM'"),
        ("predict", {"namespace": "system", "reject": True}, "of the 'system' namespace"),
        ("getModelInfo", {"delay": -1.0}, "delay must be a finite number of seconds"),
        ("getModelInfo", {"delay": float("nan")}, "delay must be a finite number"),
        ("getModelInfo", {}, "say how the endpoint misbehaves"),
        ("getModelInfo", {"delay": 1.0, "times": True}, "times must be a whole number"),
    ],
)
def test_an_endpoint_fault_that_could_never_fire_is_refused(
    endpoint: str, kwargs: dict[str, Any], message: str
) -> None:
    sim = Simulator()
    with pytest.raises(ValueError, match=message):
        sim.fault_endpoint(endpoint, **kwargs)


async def test_one_rpc_answers_slowly() -> None:
    async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
        sim.fault_endpoint("listLoaded", namespace="llm", delay=30.0)
        with pytest.raises(lms.LMStudioTimeoutError):
            await client.llm.list_loaded(timeout=0.5)
        # Other RPCs on the same socket are not held up behind the slow one.
        assert (await client.llm.model(MODEL)).identifier == MODEL


async def test_prompt_progress_advances_per_512_tokens() -> None:
    prompt = " ".join(f"w{n}" for n in range(1500))
    async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
        model = await client.llm.model(MODEL)
        progress: list[float] = []
        result = await model.respond(prompt, on_prompt_processing_progress=progress.append)
    total = result.stats.prompt_tokens_count
    assert total is not None
    assert progress == [0.0, 512 / total, 1024 / total, 1.0]


# ---- tool calls ----------------------------------------------------------------------------


async def test_tool_calls_with_missing_arguments_or_arguments_in_pieces(
    simulator: Simulator,
) -> None:
    simulator.script(
        MODEL,
        ScriptedReply(
            tool_calls=[
                ScriptedToolCall("now", arguments=None),
                ScriptedToolCall(
                    "add", {"a": 1, "b": 2}, argument_fragments=['{"a": 1', ', "b"', ": 2}"]
                ),
            ]
        ),
    )
    async with raw_client(simulator) as client:
        channel = await client.create_channel("predict", predict_parameter("go"))
        packets, _ = await client.channel_packets(channel)
    pieces = [
        p["content"] for p in packets if p["type"] == "toolCallGenerationArgumentFragmentGenerated"
    ]
    ends = [p for p in packets if p["type"] == "toolCallGenerationEnd"]
    assert "arguments" not in ends[0]["toolCallRequest"]
    assert json.loads(ends[0]["rawContent"].split("\n")[1]) == {"name": "now"}
    assert pieces == ['{"a": 1', ', "b"', ": 2}"]
    assert ends[1]["toolCallRequest"]["arguments"] == {"a": 1, "b": 2}


# ---- broken text ---------------------------------------------------------------------------


async def test_lone_surrogate_escapes_split_an_emoji_across_fragments(
    simulator: Simulator,
) -> None:
    simulator.script(MODEL, ScriptedReply(fragments=["smile ", Fragment("\ud83d"), "\ude00"]))
    async with raw_client(simulator) as client:
        channel = await client.create_channel("predict", predict_parameter("go"))
        texts = [await client.recv_text() for _ in range(5)]
    # The text frames carry JSON \u escapes, exactly what Node's JSON.stringify emits.
    assert '"content":"\\ud83d"' in texts[3]
    assert '"content":"\\ude00"' in texts[4]
    assert [json.loads(t)["channelId"] for t in texts] == [channel] * 5
    assert simulator.predictions[-1].content == "smile \ud83d\ude00"


async def test_invalid_utf8_in_a_chosen_fragment_reaches_the_socket(simulator: Simulator) -> None:
    simulator.script(MODEL, ScriptedReply(fragments=["fine ", Fragment(b"\xff\xfe")]))
    async with raw_client(simulator) as client:
        await client.create_channel("predict", predict_parameter("go"))
        for _ in range(3):  # two prompt progress packets, one good fragment
            await client.recv_text()
        msg = await client.ws.receive()
    # aiohttp validates text frames: invalid UTF-8 fails the connection (close code 1007).
    assert msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE)
    assert client.ws.close_code == aiohttp.WSCloseCode.INVALID_TEXT


async def test_an_rpc_result_with_raw_bytes(simulator: Simulator) -> None:
    simulator.fault_endpoint("listLoaded", raw_result=b'[{"identifier": "\\ud83d"}]', times=1)
    async with raw_client(simulator) as client:
        reply = await client.rpc("listLoaded")
        assert reply["result"] == [{"identifier": "\ud83d"}]
        normal = await client.rpc("listLoaded")
    assert normal["result"][0]["identifier"] == MODEL


# ---- rejected channels, unacknowledged cancels ---------------------------------------------


async def test_a_rejection_aimed_at_one_channel_create(simulator: Simulator) -> None:
    simulator.fault_endpoint("predict", reject=True, times=1)
    async with raw_client(simulator) as client:
        await client.create_channel("predict", predict_parameter("first"))
        warning = await client.recv()
        second = await client.create_channel("predict", predict_parameter("second"))
        packets, terminal = await client.channel_packets(second)
    assert warning["type"] == "communicationWarning"
    assert "".join(f["content"] for f in _fragments(packets)) == "You said: second"
    assert warning["kind"] == "channelCreationParameterTypeError"
    assert terminal["type"] == "channelClose"
    assert [p.history for p in simulator.predictions] == [predict_parameter("second")["history"]]


async def test_a_rejection_aimed_by_parameter_quotes_it_like_lm_studio(
    simulator: Simulator,
) -> None:
    simulator.fault_endpoint("predict", reject=True, when=lambda p: "second" in str(p))
    async with raw_client(simulator) as client:
        await client.create_channel("predict", predict_parameter("second"))
        warning = await client.recv()
        first = await client.create_channel("predict", predict_parameter("first"))
        _packets, terminal = await client.channel_packets(first)
    assert terminal["type"] == "channelClose"
    text = warning["warning"]
    assert text.startswith(
        "Received invalid creationParameter for channel, endpointName = predict, "
        "creationParameter = {"
    )
    quoted = text[text.index("creationParameter = ") + len("creationParameter = ") :]
    assert json.JSONDecoder().raw_decode(quoted)[0] == predict_parameter("second")
    assert ". Zod error:\n\n" in text


def test_a_fault_predicate_must_be_callable() -> None:
    with pytest.raises(TypeError, match="when must be a plain function"):
        Simulator().fault_endpoint("predict", reject=True, when="second")  # type: ignore[arg-type]


def test_an_async_fault_predicate_is_refused() -> None:
    async def later(parameter: object) -> bool:
        return True

    with pytest.raises(TypeError, match="when must be a plain function"):
        Simulator().fault_endpoint("predict", reject=True, when=later)  # type: ignore[arg-type]


async def test_a_fault_predicate_sees_a_copy_of_the_parameter(simulator: Simulator) -> None:
    def meddle(parameter: dict[str, Any]) -> bool:
        parameter["history"]["messages"][-1]["content"][0]["text"] = "meddled"
        return False

    simulator.fault_endpoint("predict", reject=True, when=meddle)
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        assert (await model.respond("hi")).content == "You said: hi"


async def test_a_rejection_aimed_at_an_rpc_quotes_its_parameter(simulator: Simulator) -> None:
    simulator.fault_endpoint("tokenize", reject=True, when=lambda p: p["inputString"] == "bad")
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        with pytest.raises(lms.LMStudioProtocolError, match="rpcParameterTypeError"):
            await model.tokenize("bad")
        assert await model.tokenize("good") != []


async def test_a_fault_predicate_that_raises_hits_nothing_and_is_logged(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(parameter: object) -> bool:
        raise KeyError("history")

    fault = simulator.fault_endpoint("predict", reject=True, when=broken)
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        assert (await model.respond("hi")).content == "You said: hi"
    assert fault.used == 0
    assert "EndpointFault.when raised" in caplog.text


async def test_rejections_honour_the_five_warnings_budget(simulator: Simulator) -> None:
    simulator.fault_endpoint("predict", reject=True, times=6)
    async with raw_client(simulator) as client:
        for n in range(6):
            await client.create_channel("predict", predict_parameter(f"try {n}"))
        warnings = [await client.recv() for _ in range(5)]
        # The sixth rejection is silent: the next frame answers a keepAlive sent after it.
        await client.send({"type": "keepAlive"})
        after = await client.recv()
    assert {w["kind"] for w in warnings} == {"channelCreationParameterTypeError"}
    assert after == {"type": "keepAliveAck"}
    assert simulator.predictions == []


async def test_a_cancel_that_is_never_acknowledged() -> None:
    async with Simulator(tokens_per_second=20) as sim, raw_client(sim) as client:
        sim.faults = Faults(ignore_cancel=True)
        channel = await client.create_channel("predict", predict_parameter("a b c d e f g h"))
        while (await client.recv())["message"]["type"] != "fragment":
            pass
        await client.send(
            {"type": "channelSend", "channelId": channel, "message": {"type": "cancel"}}
        )
        await sim.wait_for(lambda: sim.predictions[-1].cancel_received)
        await client.send({"type": "keepAlive"})
        # A fragment already on its way may still arrive, then nothing: no success, no close.
        while (frame := await client.recv()) != {"type": "keepAliveAck"}:
            assert frame["message"]["type"] == "fragment", frame
        await client.send({"type": "keepAlive"})
        assert await client.recv() == {"type": "keepAliveAck"}
        assert sim.open_channel_count() == 1
        assert sim.predictions[-1].status == "running"

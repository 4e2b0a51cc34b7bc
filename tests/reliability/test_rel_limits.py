"""max_concurrent_predictions bounds what runs in LM Studio, not just what the caller reads."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import anyio
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import ScriptedReply, Simulator
from reliability.raw_server import SUCCESS, ServerEnd, serve_raw

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"
MODEL_INFO: dict[str, Any] = SUCCESS["modelInfo"]


async def test_abandoned_predictions_keep_their_slot_until_lm_studio_ends_them(
    simulator: Simulator,
) -> None:
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, sum(1 for p in simulator.predictions if p.status == "running"))
            await anyio.sleep(0.001)

    async with lms.LMStudioClient(simulator.base_url, max_concurrent_predictions=2) as client:
        model = await client.llm.model(MODEL)

        async def abandon_after_first_fragment() -> None:
            simulator.script(MODEL, ScriptedReply(content="x " * 200, tokens_per_second=200))
            with anyio.CancelScope() as scope:
                async for _ in model.respond("go"):
                    scope.cancel()  # at the next await: abandoned mid-stream, not finished

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                async with anyio.create_task_group() as burst:
                    for _ in range(8):
                        burst.start_soon(abandon_after_first_fragment)
                tg.cancel_scope.cancel()
        await simulator.wait_for(lambda: client._open_channel_count() == 0)
    assert len(simulator.predictions) > 2
    assert peak <= 2, f"{peak} predictions ran in LM Studio at once with a limit of 2"


async def test_a_cancel_never_confirmed_frees_the_slot_after_a_bounded_grace() -> None:
    created: list[int] = []

    async def handler(end: ServerEnd) -> None:
        await end.accept_auth()
        while True:
            frame = await end.receive_json()
            if frame["type"] == "rpcCall":
                await end.send_json(
                    {"type": "rpcResult", "callId": frame["callId"], "result": MODEL_INFO}
                )
            elif frame["type"] == "channelCreate":
                # Streams one fragment, then ignores everything, cancel included.
                created.append(frame["channelId"])
                await end.send_json(
                    {
                        "type": "channelSend",
                        "channelId": frame["channelId"],
                        "message": {"type": "fragment", "fragment": {"content": "x"}},
                    }
                )

    async with (
        serve_raw(handler) as server,
        lms.LMStudioClient(server.base_url, max_concurrent_predictions=1) as client,
    ):
        model = await client.llm.model()
        (await client._connection("llm")).abandon_grace = 0.5
        first = model.respond("one")
        await anext(aiter(first))
        del first
        gc.collect()  # abandoned: cancel sent, never confirmed
        second = model.respond("two")
        with anyio.fail_after(10):
            await anext(aiter(second))  # gets the slot once the grace has passed
        assert len(created) == 2
        assert client._open_channel_count() == 1, "the abandoned channel is forgotten"


async def _one_fragment_then_silence(end: ServerEnd) -> None:
    """Streams one fragment per prediction, then ignores everything, cancel included."""
    await end.accept_auth()
    while True:
        frame = await end.receive_json()
        if frame["type"] == "rpcCall":
            await end.send_json(
                {"type": "rpcResult", "callId": frame["callId"], "result": MODEL_INFO}
            )
        elif frame["type"] == "channelCreate":
            await end.send_json(
                {
                    "type": "channelSend",
                    "channelId": frame["channelId"],
                    "message": {"type": "fragment", "fragment": {"content": "x"}},
                }
            )


@pytest.mark.parametrize("how", ["break", "cancel"])
async def test_a_cancel_never_confirmed_ends_the_wait_for_the_result(how: str) -> None:
    # The README's Cancellation example (cancel() in the loop, then the result), and `break`
    # then the result: LM Studio never confirms, so the grace ends the wait, not a hang.
    async with (
        serve_raw(_one_fragment_then_silence) as server,
        lms.LMStudioClient(server.base_url, max_concurrent_predictions=1) as client,
    ):
        model = await client.llm.model()
        (await client._connection("llm")).abandon_grace = 0.5
        prediction = model.respond("one")

        async def cancel_then_await() -> None:
            async for _ in prediction:
                if how == "break":
                    break
                await prediction.cancel()  # then the loop itself waits for the end
            await prediction

        with anyio.fail_after(10):
            with pytest.raises(lms.LMStudioTimeoutError, match="did not confirm the cancel"):
                await cancel_then_await()
            assert prediction.content == "x", "what arrived stays readable"
            assert client._open_channel_count() == 0
            await anext(aiter(model.respond("two")))  # the slot was released


async def test_a_prediction_cancelled_while_waiting_for_a_slot_is_never_sent(
    simulator: Simulator,
) -> None:
    async with lms.LMStudioClient(simulator.base_url, max_concurrent_predictions=1) as client:
        model = await client.llm.model(MODEL)
        simulator.script(MODEL, ScriptedReply(content="a " * 50, tokens_per_second=100))
        first = model.respond("first")
        await anext(aiter(first))  # running: it holds the only slot
        queued = model.respond("queued")
        waiting = asyncio.ensure_future(queued.result())
        await simulator.wait_for(lambda: queued._opening)  # queued for the slot
        await queued.cancel()
        with anyio.fail_after(10):
            with pytest.raises(lms.LMStudioCancelledError, match="before it was sent"):
                await waiting
            await first
        assert [p.content for p in simulator.predictions] == ["a " * 50]
        await anext(aiter(model.respond("next")))  # the slot is free
        never_started = model.respond("never")
        await never_started.cancel()
        with pytest.raises(lms.LMStudioCancelledError):
            await never_started
        assert len(simulator.predictions) == 2  # "first" and "next" only


# -- rejections: only the rejected request fails; no call waits on a warning never sent --------


def _is_barrier(frame: dict[str, Any]) -> bool:
    parameter = frame.get("parameter")
    return isinstance(parameter, dict) and parameter.get("throwIfNotFound") is False


class _Warnings:
    """LM Studio's per-socket warning budget: at most five, then silence."""

    def __init__(self, end: ServerEnd) -> None:
        self.end = end
        self.sent = 0

    async def send(self, kind: str, text: str) -> None:
        if self.sent < 5:
            self.sent += 1
            await self.end.send_json(
                {"type": "communicationWarning", "kind": kind, "warning": text}
            )


async def _stream_reply(end: ServerEnd, channel_id: int, text: str) -> None:
    fragment = {"type": "fragment", "fragment": {"content": text, "tokensCount": 1}}
    await end.send_json({"type": "channelSend", "channelId": channel_id, "message": fragment})
    await end.send_json({"type": "channelSend", "channelId": channel_id, "message": SUCCESS})
    await end.send_json({"type": "channelClose", "channelId": channel_id})


def _prompt(frame: dict[str, Any]) -> str:
    parameter = frame["creationParameter"]
    if "rawPrompt" in parameter:
        return str(parameter["rawPrompt"])
    return str(parameter["history"]["messages"][-1]["content"][0]["text"])


async def _answer_rpc(end: ServerEnd, frame: dict[str, Any]) -> None:
    result = {} if _is_barrier(frame) else {"result": MODEL_INFO}
    await end.send_json({"type": "rpcResult", "callId": frame["callId"], **result})


def _rejection(frame: dict[str, Any]) -> str:
    """LM Studio's warning for an invalid parameter of ``frame``, quoting it as it does."""
    if frame["type"] == "rpcCall":
        quoted = json.dumps(frame["parameter"], separators=(",", ":"))
        return (
            f"Received invalid parameter for rpcCall, endpointName = {frame['endpoint']}, "
            f"parameter = {quoted}. Zod error:\n\n  - parameter: Invalid"
        )
    quoted = json.dumps(frame["creationParameter"], separators=(",", ":"))
    return (
        f"Received invalid creationParameter for channel, endpointName = {frame['endpoint']}, "
        f"creationParameter = {quoted}. Zod error:\n\n  - creationParameter: Invalid"
    )


def _reject_bad_prompts(simulator: Simulator) -> None:
    simulator.fault_endpoint("predict", reject=True, when=lambda p: "bad" in json.dumps(p))


async def _outcomes(model: lms.LLM, prompts: list[str]) -> list[Any]:
    """Each prompt's result or exception, all sent together (one burst)."""
    return await asyncio.gather(
        *(model.respond(prompt).result() for prompt in prompts), return_exceptions=True
    )


async def test_a_rejected_channel_create_fails_only_itself() -> None:
    waiting: list[int] = []
    ten_waiting_and_confirmed = anyio.Event()
    cancels: list[int] = []

    async def handler(end: ServerEnd) -> None:
        warnings = _Warnings(end)
        await end.accept_auth()
        while True:
            frame = await end.receive_json()
            if frame["type"] == "rpcCall":
                await _answer_rpc(end, frame)
                if _is_barrier(frame) and len(waiting) == 10:
                    ten_waiting_and_confirmed.set()
            elif frame["type"] == "channelCreate":
                if _prompt(frame) == "bad":
                    await warnings.send(
                        "channelCreationParameterTypeError",
                        "Received invalid creationParameter for channel, endpointName = predict",
                    )
                    for channel_id in waiting:  # LM Studio gets to the queued ones now
                        await _stream_reply(end, channel_id, f"reply {channel_id}")
                else:
                    waiting.append(frame["channelId"])  # queued in LM Studio: silent for now
            elif frame["type"] == "channelSend":
                cancels.append(frame["channelId"])

    async with serve_raw(handler) as server, lms.LMStudioClient(server.base_url) as client:
        model = await client.llm.model()
        results: list[str] = []

        async def good(index: int) -> None:
            results.append((await model.respond(f"good {index}")).content)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for index in range(10):
                    tg.start_soon(good, index)
                await ten_waiting_and_confirmed.wait()
                with pytest.raises(lms.LMStudioProtocolError, match="rejected"):
                    await model.respond("bad")
        assert len(results) == 10, "the ten good predictions continued"
        assert cancels == [], "nothing was cancelled"
        assert client._open_channel_count() == 0


async def test_a_rejection_in_a_burst_fails_only_the_rejected_request(
    simulator: Simulator,
) -> None:
    # Sent together, before LM Studio answered anything after them: no order barrier can tell
    # them apart, but the warning quotes the refused parameter, and that names the request.
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        _reject_bad_prompts(simulator)
        prompts = [f"good {i}" for i in range(5)] + ["bad"] + [f"good {i}" for i in range(5, 10)]
        with anyio.fail_after(10):
            outcomes = await _outcomes(model, prompts)
        rejected = outcomes.pop(5)
        assert isinstance(rejected, lms.LMStudioProtocolError)
        assert "rejected the request to 'predict'" in str(rejected)
        assert [getattr(o, "content", o) for o in outcomes] == [
            f"You said: good {i}" for i in range(10)
        ]
        assert {p.status for p in simulator.predictions} == {"finished"}, "nothing was cancelled"
        await simulator.wait_for(lambda: client._open_channel_count() == 0)


async def test_identical_rejected_requests_in_a_burst_each_fail_alone(
    simulator: Simulator,
) -> None:
    # LM Studio judges the same parameter the same way: each copy gets its own warning.
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        _reject_bad_prompts(simulator)
        prompts = ["good 0", "bad", "good 1", "bad", "good 2"]
        with anyio.fail_after(10):
            outcomes = await _outcomes(model, prompts)
        assert all(isinstance(o, lms.LMStudioProtocolError) for o in outcomes[1::2])
        assert [getattr(o, "content", o) for o in outcomes[0::2]] == [
            f"You said: good {i}" for i in range(3)
        ]
        assert {p.status for p in simulator.predictions} == {"finished"}


async def test_an_rpc_rejection_after_later_calls_were_answered_still_fails_that_call() -> None:
    # LM Studio's check of a call may finish after it answered a later one: the answer moves
    # the "already validated" mark past the refused call, but the quote still names it.
    held: list[dict[str, Any]] = []

    async def handler(end: ServerEnd) -> None:
        await end.accept_auth()
        while True:
            frame = await end.receive_json()
            if frame["type"] != "rpcCall" or frame["endpoint"] != "tokenize":
                if frame["type"] == "rpcCall":
                    await _answer_rpc(end, frame)
                continue
            held.append(frame)
            if len(held) < 2:
                continue
            bad, good = sorted(held, key=lambda call: call["parameter"]["inputString"] != "bad")
            await end.send_json(
                {"type": "rpcResult", "callId": good["callId"], "result": {"tokens": [1]}}
            )
            await end.send_json(
                {
                    "type": "communicationWarning",
                    "kind": "rpcParameterTypeError",
                    "warning": _rejection(bad),
                }
            )

    async with serve_raw(handler) as server, lms.LMStudioClient(server.base_url) as client:
        model = await client.llm.model()
        with anyio.fail_after(10):  # not Timeouts.rpc's 60 s
            outcomes = await asyncio.gather(
                model.tokenize("bad"), model.tokenize("good"), return_exceptions=True
            )
        assert isinstance(outcomes[0], lms.LMStudioProtocolError)
        assert outcomes[1] == [1]


async def test_more_rejections_in_a_burst_than_warnings_left_never_hang(
    simulator: Simulator,
) -> None:
    # LM Studio warns five times per socket, then refuses silently: an older LM Studio that
    # refuses every prediction must not leave the sixth of a batch waiting forever.
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        simulator.fault_endpoint("predict", reject=True)
        with anyio.fail_after(10):
            outcomes = await _outcomes(model, [f"p {i}" for i in range(10)])
        assert all(isinstance(o, lms.LMStudioRequestRejectedError) for o in outcomes)
        assert client._open_channel_count() == 0


async def test_the_last_warning_sends_what_it_cannot_vouch_for_again_on_a_fresh_socket(
    simulator: Simulator,
) -> None:
    # LM Studio cannot report refusing what it receives after its fifth warning: the requests
    # it had not answered are withdrawn and sent again on a fresh socket, where a refused one
    # is named and the good one runs.
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        _reject_bad_prompts(simulator)
        with anyio.fail_after(10):
            for _ in range(4):  # four of LM Studio's five warnings used, each on its own
                with pytest.raises(lms.LMStudioRequestRejectedError):
                    await model.respond("bad")
            outcomes = await _outcomes(model, ["bad", "bad", "good"])
        assert [type(o) for o in outcomes[:2]] == [lms.LMStudioRequestRejectedError] * 2
        assert getattr(outcomes[2], "content", outcomes[2]) == "You said: good"
        assert client._open_channel_count() == 0


async def test_more_rpc_rejections_sent_together_than_warnings_left_never_wait(
    simulator: Simulator,
) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        simulator.fault_endpoint("tokenize", reject=True)
        with anyio.fail_after(10):  # not Timeouts.rpc's 60 s
            outcomes = await asyncio.gather(
                *(model.tokenize(f"t {i}") for i in range(6)), return_exceptions=True
            )
        rejected = [o for o in outcomes if isinstance(o, lms.LMStudioRequestRejectedError)]
        withdrawn = [o for o in outcomes if isinstance(o, lms.LMStudioConnectionError)]
        assert (len(rejected), len(withdrawn)) == (5, 1)
        assert "retry it" in str(withdrawn[0])
        with pytest.raises(lms.LMStudioRequestRejectedError):  # retried on a fresh socket
            await model.tokenize("t 5")


async def _budget_server(end: ServerEnd, *, refuse: str, first_socket: bool) -> None:
    """LM Studio spending its five warnings (the last on a cancel that crossed the end of a
    prediction) just as the next request arrives, which is then refused
    without a word (``refuse``: an endpoint it lacks, or a prompt it refuses). Each new socket
    has its full budget and says what it refuses."""
    warnings = _Warnings(end)
    first = first_socket
    await end.accept_auth()
    while True:
        frame = await end.receive_json()
        if frame["type"] == "rpcCall":
            await _answer_rpc(end, frame)
            continue
        if frame["type"] != "channelCreate":
            continue
        refused = frame["endpoint"] == refuse or _prompt(frame) == refuse
        if first:
            first = False
            for _ in range(5):  # four spent earlier, the fifth on a cancel that crossed
                await warnings.send("channelUnknown", "Received channelSend for unknown channel")
            if refused:
                continue  # refused after the last warning: silence
        if frame["endpoint"] == "completeRawText" and refuse == "completeRawText":
            await warnings.send(
                "channelEndpointUnknown",
                "Received channelCreate for unknown endpoint, endpoint = completeRawText",
            )
        elif refused:
            await warnings.send("channelCreationParameterTypeError", _rejection(frame))
        else:
            await _stream_reply(end, frame["channelId"], "continued")


async def test_complete_right_after_the_last_warning_still_falls_back_instead_of_hanging() -> None:
    sockets = 0

    async def handler(end: ServerEnd) -> None:
        nonlocal sockets
        sockets += 1
        await _budget_server(end, refuse="completeRawText", first_socket=sockets == 1)

    async with serve_raw(handler) as server, lms.LMStudioClient(server.base_url) as client:
        model = await client.llm.model()
        with anyio.fail_after(10):
            assert (await model.complete("Once upon")).content == "continued"


async def test_a_prediction_refused_right_after_the_last_warning_is_named_on_a_fresh_socket() -> (
    None
):
    sockets = 0

    async def handler(end: ServerEnd) -> None:
        nonlocal sockets
        sockets += 1
        await _budget_server(end, refuse="bad", first_socket=sockets == 1)

    async with serve_raw(handler) as server, lms.LMStudioClient(server.base_url) as client:
        model = await client.llm.model()
        with anyio.fail_after(10):
            with pytest.raises(lms.LMStudioRequestRejectedError, match="ParameterTypeError"):
                await model.respond("bad")
            assert (await model.respond("good")).content == "continued"


async def test_a_rejection_without_a_kind_from_an_older_lm_studio_fails_the_request() -> None:
    async def handler(end: ServerEnd) -> None:
        await end.accept_auth()
        while True:
            frame = await end.receive_json()
            if frame["type"] == "rpcCall":
                await _answer_rpc(end, frame)
            elif frame["type"] == "channelCreate" and _prompt(frame) == "bad":
                # Builds before March 2026 send no `kind`.
                await end.send_json({"type": "communicationWarning", "warning": _rejection(frame)})
            elif frame["type"] == "channelCreate":
                await _stream_reply(end, frame["channelId"], "fine")

    async with serve_raw(handler) as server, lms.LMStudioClient(server.base_url) as client:
        model = await client.llm.model()
        with anyio.fail_after(10):
            with pytest.raises(
                lms.LMStudioProtocolError, match="channelCreationParameterTypeError"
            ):
                await model.respond("bad")
            assert (await model.respond("good")).content == "fine"


async def test_an_unquoted_rejection_in_a_burst_fails_the_burst_promptly_and_cancels_it() -> None:
    # The documented limit of isolation: a warning that does not quote the parameter (an LM
    # Studio build that words it differently) about requests sent together cannot be told
    # apart. They all fail (none hangs), each is cancelled in LM Studio, the socket stays usable.
    cancels: list[int] = []
    created: list[int] = []

    async def handler(end: ServerEnd) -> None:
        warnings = _Warnings(end)
        await end.accept_auth()
        while True:
            frame = await end.receive_json()
            if frame["type"] == "rpcCall":
                await _answer_rpc(end, frame)
            elif frame["type"] == "channelCreate" and _prompt(frame) == "bad":
                await warnings.send(
                    "channelCreationParameterTypeError",
                    "Received invalid creationParameter for channel, endpointName = predict",
                )
            elif frame["type"] == "channelCreate" and _prompt(frame) == "next":
                await _stream_reply(end, frame["channelId"], "continued")
            elif frame["type"] == "channelCreate":
                created.append(frame["channelId"])  # accepted, queued: silent for now
            elif frame["type"] == "channelSend":
                cancels.append(frame["channelId"])

    async with serve_raw(handler) as server, lms.LMStudioClient(server.base_url) as client:
        model = await client.llm.model()
        prompts = ["good 0", "good 1", "bad", "good 2", "good 3"]
        with anyio.fail_after(10):
            outcomes = await _outcomes(model, prompts)
            assert all(isinstance(o, lms.LMStudioProtocolError) for o in outcomes)
            assert all("rejected the request to 'predict'" in str(o) for o in outcomes)
            assert client._open_channel_count() == 0
            assert (await model.respond("next")).content == "continued"
        assert set(created) <= set(cancels), "each accepted one was cancelled"


async def test_a_quoted_rpc_rejection_among_calls_sent_together_fails_only_that_call() -> None:
    held: list[dict[str, Any]] = []

    async def handler(end: ServerEnd) -> None:
        warnings = _Warnings(end)
        await end.accept_auth()
        while True:
            frame = await end.receive_json()
            if frame["type"] != "rpcCall" or frame["endpoint"] != "tokenize":
                if frame["type"] == "rpcCall":
                    await _answer_rpc(end, frame)
                continue
            held.append(frame)
            if len(held) < 3:
                continue  # hold the burst so that nothing after the bad one is answered
            for call in held:
                if call["parameter"]["inputString"] == "bad":
                    await warnings.send("rpcParameterTypeError", _rejection(call))
            for call in held:
                if call["parameter"]["inputString"] != "bad":
                    await end.send_json(
                        {"type": "rpcResult", "callId": call["callId"], "result": {"tokens": [7]}}
                    )

    async with serve_raw(handler) as server, lms.LMStudioClient(server.base_url) as client:
        model = await client.llm.model()
        with anyio.fail_after(10):
            outcomes = await asyncio.gather(
                model.tokenize("fine"),
                model.tokenize("bad"),
                model.tokenize("also fine"),
                return_exceptions=True,
            )
        assert outcomes[0] == outcomes[2] == [7]
        assert isinstance(outcomes[1], lms.LMStudioProtocolError)
        assert "rejected the request to 'tokenize'" in str(outcomes[1])


async def test_complete_on_a_server_without_complete_raw_text_never_hangs() -> None:
    warnings_sent: list[int] = []

    async def handler(end: ServerEnd) -> None:
        warnings = _Warnings(end)
        await end.accept_auth()
        while True:
            frame = await end.receive_json()
            if frame["type"] == "rpcCall":
                await _answer_rpc(end, frame)
            elif frame["type"] == "channelCreate":
                if frame["endpoint"] == "completeRawText":
                    await warnings.send(
                        "channelEndpointUnknown",
                        "Received channelCreate for unknown endpoint, endpointName = "
                        "completeRawText",
                    )
                    warnings_sent.append(1)
                else:
                    await _stream_reply(end, frame["channelId"], "continued")

    async with serve_raw(handler) as server, lms.LMStudioClient(server.base_url) as client:
        model = await client.llm.model()
        with anyio.fail_after(10):
            for _ in range(7):  # more than LM Studio's five warnings per socket
                assert (await model.complete("Once upon")).content == "continued"
    assert len(warnings_sent) == 1, "the answer is remembered for the socket"


async def test_a_used_up_warning_budget_does_not_make_complete_hang() -> None:
    sockets = 0

    async def handler(end: ServerEnd) -> None:
        nonlocal sockets
        sockets += 1
        first_socket = sockets == 1
        warnings = _Warnings(end)
        await end.accept_auth()
        while True:
            frame = await end.receive_json()
            if frame["type"] == "rpcCall":
                await _answer_rpc(end, frame)
            elif frame["type"] == "channelCreate" and frame["endpoint"] == "predict":
                await _stream_reply(end, frame["channelId"], "continued")
                if first_socket:
                    # Five cancels that crossed the end of a prediction: the budget is gone.
                    for _ in range(5):
                        await warnings.send("channelUnknown", "Received channelSend for unknown")
            elif frame["type"] == "channelCreate":
                await warnings.send(
                    "channelEndpointUnknown",
                    "Received channelCreate for unknown endpoint, endpointName = completeRawText",
                )

    async with serve_raw(handler) as server, lms.LMStudioClient(server.base_url) as client:
        model = await client.llm.model()
        with anyio.fail_after(10):
            assert (await model.respond("hi")).content == "continued"
            assert (await model.complete("Once upon")).content == "continued"
    assert sockets >= 2, "the exhausted socket was replaced"

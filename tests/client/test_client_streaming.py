"""Streaming predictions end to end: the product's main path, over real loopback sockets."""

from __future__ import annotations

import anyio
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import ScriptedReply, Simulator, default_reply

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"


async def test_the_readme_snippet_streams_text_and_stats(client: lms.LMStudioClient) -> None:
    model = await client.llm.model(MODEL)
    chat = lms.Chat.from_history(
        [
            {"role": "system", "content": "You are a resident AI philosopher."},
            {"role": "user", "content": "What is the meaning of life?"},
        ]
    )
    prediction = model.respond(chat, config={"temperature": 0.6, "max_tokens": 50})
    pieces = [fragment.content async for fragment in prediction]
    result = await prediction.result()

    assert "".join(pieces) == result.content == default_reply(chat.to_dict())
    assert len(pieces) > 1
    assert result.model_info.display_name == "Qwen2.5 7B Instruct"
    assert result.stats.predicted_tokens_count == len(pieces)
    assert result.stats.time_to_first_token_sec is not None
    assert result.stats.stop_reason == "eosFound"
    assert result.prediction_config.temperature == 0.6
    assert result.prediction_config.max_tokens == 50


async def test_streamed_and_awaited_content_are_identical(model: lms.LLM) -> None:
    streamed = "".join([f.content async for f in model.respond("Tell me a story")])
    awaited = await model.respond("Tell me a story")
    via_result = await model.respond("Tell me a story").result()
    assert streamed == awaited.content == via_result.content
    assert awaited.content == default_reply({"messages": [_user("Tell me a story")]})


async def test_result_after_iteration_needs_no_more_network(
    simulator: Simulator, model: lms.LLM
) -> None:
    prediction = model.respond("Hello")
    async for _ in prediction:
        pass
    assert prediction.done
    # Even with the server gone, the result is already there.
    await simulator.drop_connections()
    result = await prediction.result()
    assert result.content == "You said: Hello"
    assert await prediction is result


async def test_plain_string_and_dict_list_histories_are_accepted(model: lms.LLM) -> None:
    by_string = await model.respond("Ping")
    by_dicts = await model.respond([{"role": "user", "content": "Ping"}])
    by_chat = await model.respond(lms.Chat.from_history("Ping"))
    assert by_string.content == by_dicts.content == by_chat.content == "You said: Ping"


async def test_callbacks_fire_in_protocol_order(model: lms.LLM) -> None:
    events: list[str] = []

    async def on_fragment(fragment: lms.PredictionFragment) -> None:
        events.append(f"fragment:{fragment.content}")

    result = await model.respond(
        "a b",
        on_prompt_processing_progress=lambda p: events.append(f"progress:{p}"),
        on_first_token=lambda: events.append("first"),
        on_prediction_fragment=on_fragment,
    )
    progress = [e for e in events if e.startswith("progress")]
    assert progress[0] == "progress:0.0"
    assert progress[-1] == "progress:1.0"
    first = events.index("first")
    assert all(e.startswith("progress") for e in events[:first])
    fragments = [e.removeprefix("fragment:") for e in events[first + 1 :]]
    assert "".join(fragments) == result.content


async def test_reasoning_is_split_from_the_answer(simulator: Simulator, model: lms.LLM) -> None:
    simulator.script(MODEL, ScriptedReply(reasoning="Think hard.", content="42"))
    fragments = []
    prediction = model.respond("Why?")
    async for fragment in prediction:
        fragments.append(fragment)
    result = await prediction.result()
    assert result.reasoning_content == "Think hard."
    assert result.non_reasoning_content == "42"
    assert "<think>" in result.content
    assert result.content.endswith("42")
    assert {f.reasoning_type for f in fragments} >= {"reasoningStartTag", "reasoning", "none"}


async def test_complete_continues_raw_text(simulator: Simulator, model: lms.LLM) -> None:
    result = await model.complete("Once upon a time")
    assert result.content
    created = [f for f in simulator.frames_received("llm") if f.get("type") == "channelCreate"]
    assert created[-1]["endpoint"] == "completeRawText"
    assert created[-1]["creationParameter"]["rawPrompt"] == "Once upon a time"
    # Stop strings from presets must not cut raw completions (what LM Studio's own client does).
    fields = created[-1]["creationParameter"]["predictionConfigStack"]["layers"][0]["config"]
    assert {"key": "llm.prediction.stopStrings", "value": []} in fields["fields"]


async def test_max_tokens_and_stop_strings_reach_the_model(model: lms.LLM) -> None:
    limited = await model.respond("one two three four five six", config={"maxTokens": 2})
    assert limited.stats.stop_reason == "maxPredictedTokensReached"
    assert limited.stats.predicted_tokens_count == 2
    stopped = await model.respond("alpha beta gamma", config={"stop_strings": ["beta"]})
    assert stopped.stats.stop_reason == "stopStringFound"
    assert "beta" not in stopped.content


async def test_two_hundred_concurrent_predictions_share_one_socket(
    simulator: Simulator, client: lms.LMStudioClient, model: lms.LLM
) -> None:
    results: dict[int, str] = {}

    async def run(i: int) -> None:
        results[i] = "".join([f.content async for f in model.respond(f"prompt number {i}")])

    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(run, i)

    assert results == {i: f"You said: prompt number {i}" for i in range(200)}
    llm_auths = [f for f in simulator.frames_received("llm") if "authVersion" in f]
    assert len(llm_auths) == 1
    await simulator.wait_for(lambda: client._open_channel_count() == 0)
    await simulator.wait_for(lambda: simulator.open_channel_count() == 0)


async def test_a_slow_consumer_does_not_hold_up_other_predictions(
    simulator: Simulator, model: lms.LLM
) -> None:
    simulator.script(MODEL, ScriptedReply(content=" ".join(["slow"] * 50)))
    slow = model.respond("first")
    async with slow:
        # Take one fragment, then sit on the rest while another prediction runs to the end.
        async for _ in slow:
            break
        with anyio.fail_after(5):
            fast = await model.respond("second")
        assert fast.content == "You said: second"


def _user(text: str) -> dict[str, object]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


# -- one task iterates, others await the result -----------------------------------------------


async def test_result_in_another_task_waits_for_a_slow_iterating_loop(
    simulator: Simulator, model: lms.LLM
) -> None:
    content = " ".join(f"w{i}" for i in range(20))
    simulator.script(MODEL, ScriptedReply(content=content, tokens_per_second=200))
    prediction = model.respond("go")
    seen: list[str] = []
    results: list[lms.PredictionResult[str]] = []

    async def iterate() -> None:
        async for fragment in prediction:
            seen.append(fragment.content)
            await anyio.sleep(0.01)  # work per fragment: between fragments, not reading

    async def await_result() -> None:
        await anyio.sleep(0.03)
        results.append(await prediction.result())

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(iterate)
            tg.start_soon(await_result)
    assert "".join(seen) == content, "the iterating loop saw every fragment"
    assert results[0].content == content


async def test_result_in_another_task_returns_when_the_loop_breaks(
    simulator: Simulator, model: lms.LLM
) -> None:
    simulator.script(MODEL, ScriptedReply(content="a b c d e f g h i j k l", tokens_per_second=50))
    prediction = model.respond("go")
    results: list[lms.PredictionResult[str]] = []
    third = anyio.Event()

    async def iterate_then_break() -> None:
        seen = 0
        async for _ in prediction:
            seen += 1
            if seen == 2:
                third.set()
            if seen == 3:
                break

    async def await_result() -> None:
        await third.wait()
        results.append(await prediction.result())

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(iterate_then_break)
            tg.start_soon(await_result)
    assert results[0].stats.stop_reason == "userStopped"
    assert results[0].content.startswith("a b c")
    await simulator.wait_for(lambda: simulator.open_channel_count() == 0)


async def test_result_inside_the_loop_body_finishes_the_stream(model: lms.LLM) -> None:
    """The iterating task itself may ask for the result: it drains the rest, no deadlock."""
    prediction = model.respond("one two three")
    with anyio.fail_after(5):
        async for fragment in prediction:
            assert fragment.content == "You "
            result = await prediction.result()
            break
    assert result.content == "You said: one two three"


async def test_reading_content_inside_the_loop_sees_the_text_so_far(
    simulator: Simulator, model: lms.LLM
) -> None:
    # The README's `if len(prediction.content) > 200` pattern: each read is the text so far,
    # kept joined between reads (no walk over every fragment again), reasoning split intact.
    simulator.script(MODEL, ScriptedReply(reasoning="Think hard.", content="forty two and more"))
    prediction = model.respond("Why?")
    so_far = ""
    async for fragment in prediction:
        so_far += fragment.content
        assert prediction.content == so_far
        assert prediction.content == so_far, "a second read gives the same text"
    result = await prediction
    assert result.content == so_far
    assert result.reasoning_content == "Think hard."
    assert result.non_reasoning_content == "forty two and more"

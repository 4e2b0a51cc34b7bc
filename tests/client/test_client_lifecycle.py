"""The client's lifecycle does not depend on which task opens or closes it, nor on user hooks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

import anyio
import pytest

import lmstudio_async as lms
from lmstudio_async._mux._connection import ABANDON_GRACE
from lmstudio_async.testing import Faults, Simulator

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"


# -- item 11: lifecycle across tasks, use without `async with`, ResourceWarning ----------------


async def test_entered_in_one_task_and_exited_in_another(simulator: Simulator) -> None:
    client = lms.LMStudioClient(simulator.base_url)
    stack = contextlib.AsyncExitStack()

    async def open_it() -> None:
        await stack.enter_async_context(client)
        await client.system.version()  # a socket task now runs, owned by the client

    async def close_it() -> None:
        await stack.aclose()

    await asyncio.create_task(open_it())
    with anyio.fail_after(10):
        await asyncio.create_task(close_it())
    assert "closed" in repr(client)
    await simulator.wait_for(lambda: simulator.connection_count() == 0)


async def test_used_without_async_with_and_closed_by_aclose(simulator: Simulator) -> None:
    client = lms.LMStudioClient(simulator.base_url)
    model = await client.llm.model(MODEL)  # the first call opens the client
    assert (await model.respond("hi")).content == "You said: hi"
    assert "open" in repr(client)
    await client.aclose()
    await simulator.wait_for(lambda: simulator.connection_count() == 0)
    with pytest.raises(lms.LMStudioClientClosedError):
        await client.system.version()


async def test_an_unclosed_client_warns_naming_itself_and_is_closed(
    simulator: Simulator,
) -> None:
    client = lms.LMStudioClient(simulator.base_url)
    await client.system.version()
    del client
    with pytest.warns(ResourceWarning, match="Unclosed <LMStudioClient open") as record:
        gc.collect()
    assert not any("session" in str(w.message) for w in record), "aiohttp's warning is not shown"
    # The collected client's sockets are closed in its own loop.
    await simulator.wait_for(lambda: simulator.connection_count() == 0)


# -- item 10: closing does not wait on user hooks ----------------------------------------------


@pytest.mark.parametrize("hook_kind", ["sleeps", "never_returns"])
async def test_close_does_not_wait_for_a_slow_disconnect_hook(
    simulator: Simulator, hook_kind: str
) -> None:
    hook_running = anyio.Event()

    async def on_disconnect(namespace: str) -> None:
        hook_running.set()
        if hook_kind == "sleeps":
            await anyio.sleep(8)
        else:
            await anyio.sleep_forever()

    client = lms.LMStudioClient(simulator.base_url, on_disconnect=on_disconnect)
    async with client:
        await client.system.version()
        await simulator.drop_connections()
        with anyio.fail_after(10):
            await hook_running.wait()
        started = anyio.current_time()
    # Generous for a loaded machine, far below the hook's 8 s (or forever).
    assert anyio.current_time() - started < 4


async def test_a_cancelled_owner_task_closes_promptly_despite_a_slow_hook(
    simulator: Simulator,
) -> None:
    hook_running = anyio.Event()

    async def on_disconnect(namespace: str) -> None:
        hook_running.set()
        await anyio.sleep(8)

    async def owner() -> None:
        async with lms.LMStudioClient(simulator.base_url, on_disconnect=on_disconnect) as client:
            await client.system.version()
            await simulator.drop_connections()
            await anyio.sleep_forever()

    task = asyncio.create_task(owner())
    with anyio.fail_after(10):
        await hook_running.wait()
    started = anyio.current_time()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert anyio.current_time() - started < 4


# -- closing with cancelled predictions still in their cancel grace ----------------------------


async def test_closing_right_after_cancelling_unconfirmed_predictions_raises_nothing(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    # The benchmark's memory scenario as a user writes it: many predictions in flight on a
    # server that never confirms a cancel, every task cancelled and gathered, then the client
    # closed while each cancelled prediction still waits out its grace for LM Studio's end.
    simulator.faults = Faults(stall_after_fragments=1, ignore_cancel=True)
    count = 200
    arrived = 0
    all_in = anyio.Event()

    async def predict(model: lms.LLM, tag: str) -> None:
        nonlocal arrived
        async for _ in model.respond(tag):
            arrived += 1
            if arrived == count:
                all_in.set()

    with caplog.at_level(logging.WARNING):
        async with lms.LMStudioClient(simulator.base_url) as client:
            model = await client.llm.model(MODEL)
            tasks = [asyncio.create_task(predict(model, f"p{i}")) for i in range(count)]
            with anyio.fail_after(30):
                await all_in.wait()
            for task in tasks:
                task.cancel()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)
            assert client._open_channel_count() == count  # all unconfirmed, in their grace
            started = anyio.current_time()
        # Closing fails the abandoned channels without waiting out their grace.
        assert anyio.current_time() - started < ABANDON_GRACE / 2
        del tasks, outcomes
        gc.collect()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    await simulator.wait_for(lambda: simulator.connection_count() == 0)


# -- item 15: asyncio only, said clearly ---------------------------------------------------------


def test_without_an_asyncio_loop_the_error_says_asyncio_is_needed() -> None:
    # What trio looks like to the client: code running with no asyncio loop. The coroutine is
    # stepped by hand, as a foreign event loop would.
    client = lms.LMStudioClient("127.0.0.1:1")
    step = client.system.version()
    with pytest.raises(lms.LMStudioUsageError, match="needs asyncio") as caught:
        step.send(None)
    assert "trio" in str(caught.value)
    assert "unopened" in repr(client)

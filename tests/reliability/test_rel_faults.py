"""The fault matrix: every way the server can fail gives the right error, no hang, no leak,
and the next call works. Also timeouts, reconnect backoff, hooks and the concurrency limit."""

from __future__ import annotations

import gc
import random
import socket
from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel
import pytest

import lmstudio_async as lms
from lmstudio_async._connections import ReconnectBackoff
from lmstudio_async.testing import Faults, ScriptedReply, Simulator

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"
PROMPT = "one two three four five six seven eight"
REPLY = f"You said: {PROMPT}"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator() as simulator:
        yield simulator


async def _assert_clean(sim: Simulator, client: lms.LMStudioClient) -> None:
    await sim.wait_for(lambda: sim.open_channel_count() == 0)
    await sim.wait_for(lambda: client._open_channel_count() == 0)


async def _next_call_works(
    client: lms.LMStudioClient, per_call_timeout: float | None = None
) -> None:
    """``per_call_timeout`` replaces a short ``Timeouts.rpc`` the test set for its fault."""
    with anyio.fail_after(10):
        model = await client.llm.model(MODEL, timeout=per_call_timeout)
        assert (await model.respond(PROMPT, timeout=per_call_timeout)).content == REPLY
        assert (await client.system.version(timeout=per_call_timeout)).version


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- socket drops ---------------------------------------------------------------------------


async def test_refused_connection_then_server_appears() -> None:
    port = _free_port()
    async with lms.LMStudioClient(f"127.0.0.1:{port}") as client:
        with anyio.fail_after(5), pytest.raises(lms.LMStudioConnectionError):
            await client.system.version()
        async with Simulator(port=port) as sim:
            await _next_call_works(client)
            await _assert_clean(sim, client)


async def test_drop_during_auth(sim: Simulator) -> None:
    sim.faults = Faults(drop_on_auth=True)
    async with lms.LMStudioClient(sim.base_url) as client:
        with anyio.fail_after(5), pytest.raises(lms.LMStudioConnectionError):
            await client.system.version()
        sim.faults = Faults()
        await _next_call_works(client)
        await _assert_clean(sim, client)


async def test_stalled_auth_times_out(sim: Simulator) -> None:
    sim.faults = Faults(stall_auth=True)
    # Long enough for the healthy reconnect afterwards to authenticate on a loaded machine.
    timeouts = lms.Timeouts(auth=1.0)
    async with lms.LMStudioClient(sim.base_url, timeouts=timeouts) as client:
        with anyio.fail_after(5), pytest.raises(lms.LMStudioTimeoutError, match="auth"):
            await client.system.version()
        sim.faults = Faults()
        await _next_call_works(client)


async def test_connect_timeout_on_a_blackhole_host() -> None:
    # A listening socket that never completes the websocket upgrade: TCP accepts (backlog),
    # the HTTP request is never answered.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        timeouts = lms.Timeouts(connect=0.2)
        async with lms.LMStudioClient(f"127.0.0.1:{port}", timeouts=timeouts) as client:
            with anyio.fail_after(5), pytest.raises(lms.LMStudioTimeoutError, match="connect"):
                await client.system.version()


async def test_drop_mid_stream(sim: Simulator) -> None:
    sim.script(MODEL, ScriptedReply(content=PROMPT, faults=Faults(drop_after_fragments=3)))
    async with lms.LMStudioClient(sim.base_url) as client:
        model = await client.llm.model(MODEL)
        prediction = model.respond("go")
        received = []

        async def consume() -> None:
            async for fragment in prediction:
                received.append(fragment.content)

        with anyio.fail_after(5), pytest.raises(lms.LMStudioConnectionError):
            await consume()
        assert len(received) == 3
        with pytest.raises(lms.LMStudioConnectionError):
            await prediction.result()  # the handle keeps failing the same way
        await _assert_clean(sim, client)
        await _next_call_works(client)


async def test_drop_between_rpcs_fires_hooks_and_reconnects(sim: Simulator) -> None:
    events: list[tuple[str, str]] = []
    disconnected = anyio.Event()

    def on_disconnect(namespace: str) -> None:
        events.append(("disconnect", namespace))
        disconnected.set()

    async def on_reconnect(namespace: str) -> None:
        await anyio.lowlevel.checkpoint()
        events.append(("reconnect", namespace))

    async with lms.LMStudioClient(
        sim.base_url, on_disconnect=on_disconnect, on_reconnect=on_reconnect
    ) as client:
        await client.system.version()
        assert events == []
        await sim.drop_connections()
        with anyio.fail_after(5):
            await disconnected.wait()
        with anyio.fail_after(5):
            assert (await client.system.version()).version
        await sim.wait_for(lambda: ("reconnect", "system") in events)
        assert events == [("disconnect", "system"), ("reconnect", "system")]


async def test_server_restart_on_the_same_port() -> None:
    port = _free_port()
    async with lms.LMStudioClient(f"127.0.0.1:{port}") as client:
        sim = Simulator(port=port)
        await sim.start()
        model = await client.llm.model(MODEL)
        sim.script(MODEL, ScriptedReply(content=PROMPT, tokens_per_second=50))
        prediction = model.respond("go")
        async for _ in prediction:
            break  # running now
        await sim.aclose()
        with anyio.fail_after(5), pytest.raises(lms.LMStudioConnectionError):
            await prediction.result()
        async with Simulator(port=port) as restarted:
            await _next_call_works(client)
            # The old handle addresses the instance of the old server process; a new one works.
            await _assert_clean(restarted, client)


# -- bad server data ------------------------------------------------------------------------


async def test_channel_error_mid_stream(sim: Simulator) -> None:
    sim.script(MODEL, ScriptedReply(content=PROMPT, faults=Faults(channel_error_after_fragments=2)))
    async with lms.LMStudioClient(sim.base_url) as client:
        model = await client.llm.model(MODEL)
        with anyio.fail_after(5), pytest.raises(lms.LMStudioServerError):
            await model.respond("go")
        await _assert_clean(sim, client)
        await _next_call_works(client)


@pytest.mark.parametrize(
    "display_data",
    [{"code": ["not", "a", "string"]}, {"code": {"nested": 1}}, ["not", "a", "mapping"], 7],
)
async def test_malformed_error_payload_fails_only_that_prediction(
    sim: Simulator, display_data: object
) -> None:
    error = {"title": "Something broke", "displayData": display_data}
    sim.script(MODEL, ScriptedReply(error=error))
    async with lms.LMStudioClient(sim.base_url) as client:
        model = await client.llm.model(MODEL)
        with anyio.fail_after(5), pytest.raises(lms.LMStudioServerError) as caught:
            await model.respond("go")
        assert type(caught.value) is lms.LMStudioChannelError
        assert caught.value.code is None
        assert "Something broke" in str(caught.value)
        await _assert_clean(sim, client)
        await _next_call_works(client)


async def test_a_frame_the_client_fails_to_handle_ends_only_that_socket(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected bug while handling a message fails what was in flight on that socket, as
    a drop would; it never escapes into the client's task group (which would cancel the code
    inside ``async with client``)."""
    from lmstudio_async._mux import _connection

    def broken(payload: object, **_: object) -> lms.LMStudioServerError:
        raise RuntimeError("bug while building the error")

    sim.script(MODEL, ScriptedReply(error={"title": "x"}))
    async with lms.LMStudioClient(sim.base_url) as client:
        model = await client.llm.model(MODEL)
        with monkeypatch.context() as patch:
            patch.setattr(_connection, "server_error_from_payload", broken)
            with anyio.fail_after(5), pytest.raises(lms.LMStudioConnectionError) as caught:
                await model.respond("go")
            await _assert_clean(sim, client)
            # The same for an RPC whose error the client fails to handle.
            with anyio.fail_after(5), pytest.raises(lms.LMStudioConnectionError):
                await client.llm.unload("nothing-loaded-under-this-name")
        assert "report this as a bug" in str(caught.value)
        assert isinstance(caught.value.__cause__, RuntimeError)
        await _assert_clean(sim, client)
        assert client._pool.pending_call_count() == 0
        await _next_call_works(client)


@pytest.mark.parametrize(
    "faults",
    [
        Faults(malformed_json_after_fragments=2),
        Faults(unknown_packet_after_fragments=2),
        Faults(unknown_channel_after_fragments=2),
        Faults(unknown_envelope_after_fragments=2),
        Faults(malformed_json_after_fragments=0),
        Faults(unknown_packet_after_fragments=0),
    ],
    ids=[
        "malformed-json",
        "unknown-packet",
        "unknown-channel",
        "unknown-envelope",
        "bad-first",
        "unknown-first",
    ],
)
async def test_unusable_frames_are_skipped(sim: Simulator, faults: Faults) -> None:
    sim.script(MODEL, ScriptedReply(content=PROMPT, faults=faults))
    async with lms.LMStudioClient(sim.base_url) as client:
        model = await client.llm.model(MODEL)
        with anyio.fail_after(5):
            result = await model.respond("go")
        assert result.content == PROMPT
        assert result.stats.stop_reason == "eosFound"
        await _assert_clean(sim, client)
        await _next_call_works(client)


# -- stalls and timeouts ----------------------------------------------------------------------


async def _assert_server_cancelled(sim: Simulator, client: lms.LMStudioClient) -> None:
    await sim.wait_for(lambda: sim.predictions[-1].cancel_received)
    await _assert_clean(sim, client)
    assert sim.predictions[-1].status == "cancelled"


async def test_stall_between_fragments_times_out_and_cancels(sim: Simulator) -> None:
    sim.script(MODEL, ScriptedReply(content=PROMPT, faults=Faults(stall_after_fragments=2)))
    # The stall never ends, so the deadline always fires; 1 s keeps the healthy calls of
    # _next_call_works (under the same deadline) clear of a loaded machine's hiccups.
    timeouts = lms.Timeouts(between_fragments=1.0)
    async with lms.LMStudioClient(sim.base_url, timeouts=timeouts) as client:
        model = await client.llm.model(MODEL)
        prediction = model.respond("go")
        with anyio.fail_after(5), pytest.raises(lms.LMStudioTimeoutError, match="between"):
            async for _ in prediction:
                pass
        assert isinstance(await _raised(prediction), TimeoutError)
        await _assert_server_cancelled(sim, client)
        await _next_call_works(client)


async def _raised(prediction: lms.PredictionStream[str]) -> BaseException:
    try:
        await prediction.result()
    except BaseException as exc:
        return exc
    raise AssertionError("expected the prediction to keep failing")


async def test_first_fragment_deadline(sim: Simulator) -> None:
    sim.script(MODEL, ScriptedReply(content=PROMPT, faults=Faults(stall_after_fragments=0)))
    # The stall never ends, so the deadline always fires; 1 s keeps the healthy calls of
    # _next_call_works (under the same deadline) clear of a loaded machine's hiccups.
    timeouts = lms.Timeouts(first_fragment=1.0)
    async with lms.LMStudioClient(sim.base_url, timeouts=timeouts) as client:
        model = await client.llm.model(MODEL)
        with anyio.fail_after(5), pytest.raises(lms.LMStudioTimeoutError, match="first_fragment"):
            await model.respond("go")
        await _assert_server_cancelled(sim, client)
        await _next_call_works(client)


async def test_per_call_timeout_on_respond_and_complete(sim: Simulator) -> None:
    async with lms.LMStudioClient(sim.base_url) as client:
        model = await client.llm.model(MODEL)
        sim.script(MODEL, ScriptedReply(content=PROMPT, faults=Faults(stall_after_fragments=1)))
        with anyio.fail_after(5), pytest.raises(lms.LMStudioTimeoutError, match="timeout="):
            await model.respond("go", timeout=0.2)
        await _assert_server_cancelled(sim, client)
        sim.script(MODEL, ScriptedReply(content=PROMPT, faults=Faults(stall_after_fragments=1)))
        with anyio.fail_after(5), pytest.raises(lms.LMStudioTimeoutError):
            await model.complete("go", timeout=0.2)
        await _assert_server_cancelled(sim, client)
        # A generous timeout does not disturb a healthy prediction.
        assert (await model.respond(PROMPT, timeout=30)).content == REPLY
        with pytest.raises(lms.LMStudioUsageError, match="timeout"):
            model.respond("go", timeout=-1)


async def test_rpc_timeouts(sim: Simulator) -> None:
    timeouts = lms.Timeouts(rpc=0.2)
    async with lms.LMStudioClient(sim.base_url, timeouts=timeouts) as client:
        await client.system.version(timeout=5)  # connect and authenticate without a deadline race
        sim.faults = Faults(stall_rpcs=True)
        with anyio.fail_after(5), pytest.raises(lms.LMStudioTimeoutError, match=r"Timeouts\.rpc"):
            await client.system.version()
        with anyio.fail_after(5), pytest.raises(lms.LMStudioTimeoutError, match="timeout="):
            await client.llm.list_loaded(timeout=0.1)
        assert client._pool.pending_call_count() == 0
        # An explicit timeout= replaces the client default rather than adding to it.
        sim.faults = Faults(rpc_delay=0.4)
        with anyio.fail_after(5):
            assert (await client.system.version(timeout=5)).version
        embedder = await client.embedding.model(timeout=5)
        assert len(await embedder.embed("x", timeout=5)) == 768
        sim.faults = Faults()
        await _next_call_works(client, per_call_timeout=10)


async def test_model_load_timeout_cancels_the_load() -> None:
    async with (
        Simulator(load_duration=30.0, record_frames=True) as sim,
        lms.LMStudioClient(sim.base_url) as client,
    ):
        await client.llm.list_loaded()  # connected: the 0.2 s below are the load's alone
        with anyio.fail_after(5), pytest.raises(lms.LMStudioTimeoutError, match="model"):
            await client.llm.model("google/gemma-3-4b", timeout=0.2)
        await _assert_clean(sim, client)
        [create] = [
            f
            for f in sim.frames_received("llm")
            if f.get("type") == "channelCreate" and f.get("endpoint") == "getOrLoad"
        ]
        sent = [
            f["message"]
            for f in sim.frames_received("llm")
            if f.get("type") == "channelSend" and f.get("channelId") == create["channelId"]
        ]
        assert sent == [{"type": "cancel"}]
        assert "google/gemma-3-4b" not in sim.loaded_identifiers()


def test_timeouts_validation() -> None:
    assert lms.Timeouts().rpc == 60.0
    assert lms.Timeouts().between_fragments is None
    for bad in (0, -1, float("nan"), "5", True):
        with pytest.raises(lms.LMStudioUsageError, match="positive number"):
            lms.Timeouts(rpc=bad)  # type: ignore[arg-type]
    with pytest.raises(lms.LMStudioUsageError, match="Timeouts"):
        lms.LMStudioClient("localhost:1", timeouts={"rpc": 1})  # type: ignore[arg-type]
    with pytest.raises(lms.LMStudioUsageError, match="max_concurrent_predictions"):
        lms.LMStudioClient("localhost:1", max_concurrent_predictions=0)
    with pytest.raises(lms.LMStudioUsageError, match="on_disconnect"):
        lms.LMStudioClient("localhost:1", on_disconnect="print")  # type: ignore[arg-type]
    assert issubclass(lms.LMStudioTimeoutError, TimeoutError)
    client = lms.LMStudioClient("localhost:1", auth_timeout=3)
    assert client.timeouts.auth == 3.0


# -- reconnect backoff ------------------------------------------------------------------------


class _FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _FixedJitter(random.Random):
    """``uniform(a, b)`` always answers ``b``: the longest wait the jitter allows."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_backoff_schedule_doubles_counts_time_elsewhere_caps_and_resets() -> None:
    clock = _FakeClock()
    backoff = ReconnectBackoff(base=0.1, cap=1.0, clock=clock, rng=_FixedJitter())
    assert backoff.delay() == 0.0, "nothing waits before the first failure"
    waits = []
    for _ in range(6):
        backoff.failed()
        waits.append(round(backoff.delay(), 6))
    assert waits == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0], "doubles from base, capped"
    clock.now += 0.25
    assert backoff.delay() == pytest.approx(0.75), "time spent elsewhere counts"
    clock.now += 5.0
    assert backoff.delay() == 0.0
    backoff.succeeded()
    assert backoff.failures == 0
    assert backoff.delay() == 0.0, "after a success nothing waits"
    backoff.failed()
    assert backoff.delay() == pytest.approx(0.1), "and the schedule starts over"


def test_backoff_jitter_stays_between_half_and_the_full_step() -> None:
    clock = _FakeClock()
    backoff = ReconnectBackoff(base=0.1, cap=5.0, clock=clock, rng=random.Random(7))
    for failures in range(1, 200):
        backoff.failed()
        step = min(5.0, 0.1 * 2 ** (failures - 1))
        assert step / 2 <= backoff.delay() <= step, (failures, backoff.delay())


async def test_backoff_spaces_out_failed_connects_to_a_dead_server_then_recovers() -> None:
    port = _free_port()
    async with lms.LMStudioClient(f"127.0.0.1:{port}") as client:
        started = anyio.current_time()
        for _ in range(5):
            with pytest.raises(lms.LMStudioConnectionError):
                await client.system.version()
        elapsed = anyio.current_time() - started
        # Attempts 2..5 wait at least half of 0.1 + 0.2 + 0.4 + 0.8 s (jitter in [0.5, 1]);
        # the ceiling only catches waits far beyond the schedule, with room for a slow machine.
        assert 0.7 <= elapsed < 10.0, elapsed
        async with Simulator(port=port):
            # The fifth failure asks for at most 1.6 s before the next attempt.
            with anyio.fail_after(10):
                assert await client.system.version()
                await client.llm.model(MODEL)


# -- concurrency limit --------------------------------------------------------------------------


async def test_max_concurrent_predictions_queues_fifo(sim: Simulator) -> None:
    async with lms.LMStudioClient(sim.base_url, max_concurrent_predictions=2) as client:
        model = await client.llm.model(MODEL)
        running_peak = 0

        async def watch() -> None:
            nonlocal running_peak
            while True:
                running = sum(1 for p in sim.predictions if p.status == "running")
                running_peak = max(running_peak, running)
                await anyio.sleep(0.001)

        for _ in range(6):
            sim.script(MODEL, ScriptedReply(content="a b c d e f", tokens_per_second=100))
        order: list[int] = []

        async def run(index: int) -> None:
            prediction = model.respond(f"request {index}")
            await prediction
            order.append(index)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                async with anyio.create_task_group() as inner:
                    for index in range(6):
                        inner.start_soon(run, index)
                        await anyio.sleep(0.01)  # a well-defined arrival order
                tg.cancel_scope.cancel()
        assert running_peak == 2
        assert order == list(range(6)), "served first come, first served"
        prompts = [p.history["messages"][-1]["content"][0]["text"] for p in sim.predictions[-6:]]  # type: ignore[index]
        assert prompts == [f"request {i}" for i in range(6)]
        await _assert_clean(sim, client)


async def test_concurrency_slot_is_released_on_every_ending(sim: Simulator) -> None:
    async with lms.LMStudioClient(sim.base_url, max_concurrent_predictions=1) as client:
        model = await client.llm.model(MODEL)
        slow = ScriptedReply(content=" ".join(["w"] * 200), tokens_per_second=100)
        with anyio.fail_after(10):
            # break out of iteration
            sim.script(MODEL, slow)
            async for _ in model.respond("go"):
                break
            assert (await model.respond(PROMPT)).content == REPLY
            # a dropped handle (garbage collected)
            sim.script(MODEL, slow)
            dropped = model.respond("go")
            async for _ in dropped:
                break
            del dropped
            gc.collect()
            assert (await model.respond(PROMPT)).content == REPLY
            # cancellation of the awaiting task
            sim.script(MODEL, slow)
            with anyio.move_on_after(0.05):
                await model.respond("go")
            assert (await model.respond(PROMPT)).content == REPLY
            # a server error
            sim.script(
                MODEL, ScriptedReply(content="x y", faults=Faults(channel_error_after_fragments=1))
            )
            with pytest.raises(lms.LMStudioServerError):
                await model.respond("go")
            assert (await model.respond(PROMPT)).content == REPLY
            # a timeout, and a socket drop
            sim.script(MODEL, ScriptedReply(content="x y", faults=Faults(stall_after_fragments=1)))
            with pytest.raises(lms.LMStudioTimeoutError):
                await model.respond("go", timeout=0.1)
            sim.script(MODEL, ScriptedReply(content="x y", faults=Faults(drop_after_fragments=1)))
            with pytest.raises(lms.LMStudioConnectionError):
                await model.respond("go")
            model = await client.llm.model(MODEL)
            assert (await model.respond(PROMPT)).content == REPLY
        await _assert_clean(sim, client)


async def test_client_is_bound_to_its_event_loop(sim: Simulator) -> None:
    async with lms.LMStudioClient(sim.base_url) as client:
        await client.system.version()

        def other_loop() -> None:
            async def use() -> None:
                await client.system.version()

            with pytest.raises(lms.LMStudioUsageError, match="different event loop"):
                anyio.run(use)

        await anyio.to_thread.run_sync(other_loop)
        assert (await client.system.version()).version

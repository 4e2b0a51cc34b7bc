"""Connection lifecycle: lazy sockets, host resolution, auth, drops and reconnection."""

from __future__ import annotations

import socket
import threading

import anyio
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import Faults, ScriptedReply, Simulator

pytestmark = pytest.mark.anyio

MODEL = "qwen2.5-7b-instruct"
TOKEN = "sk-lm-Ab12Cd34:Ef56Gh78Ij90Kl12Mn34"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_sockets_open_lazily_one_per_namespace(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        assert simulator.connection_count() == 0
        model = await client.llm.model(MODEL)
        await model.respond("hi")
        await client.llm.list_loaded()
        assert simulator.connection_count() == 1
        await client.system.version()
        assert simulator.connection_count() == 2
        identities = {
            f["clientIdentifier"] for f in simulator.frames_received() if "authVersion" in f
        }
        assert len(identities) == 1, "one client identity across namespaces"
    await simulator.wait_for(lambda: simulator.connection_count() == 0)


@pytest.mark.parametrize("form", ["ws://{host}", "http://{host}", "{host}", "ws://{host}/"])
async def test_base_url_forms(simulator: Simulator, form: str) -> None:
    host = simulator.base_url.removeprefix("ws://")
    async with lms.LMStudioClient(form.format(host=host)) as client:
        assert (await client.system.version()).version


async def test_base_url_from_the_environment(
    simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LMSTUDIO_BASE_URL", simulator.base_url)
    async with lms.LMStudioClient() as client:
        assert (await client.system.version()).version


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "ftp://host:1",
        "ws://user:pw@host:1",
        "ws://host:1?x=1",
        "ws://host:99999",
        "[::1",  # urlsplit's own ValueError ("Invalid IPv6 URL") must not escape
        "ws://[::1:1234",
        "host:port",
    ],
)
def test_invalid_base_url_is_rejected_at_construction(bad: str) -> None:
    with pytest.raises(lms.LMStudioUsageError, match="base_url"):
        lms.LMStudioClient(bad)


async def test_nothing_listening_names_the_host() -> None:
    port = _closed_port()
    async with lms.LMStudioClient(f"127.0.0.1:{port}") as client:
        with pytest.raises(lms.LMStudioConnectionError, match=f"127.0.0.1:{port}"):
            await client.llm.model(MODEL)
        assert client._open_channel_count() == 0


async def test_discovery_failure_names_every_host_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LMSTUDIO_BASE_URL", raising=False)
    async with lms.LMStudioClient(probe_timeout=0.2) as client:
        with pytest.raises(lms.LMStudioNotFoundError) as caught:
            await client.system.version()
    assert "127.0.0.1:41343" in str(caught.value)
    assert "127.0.0.1:1234" in str(caught.value)
    assert len(caught.value.hosts_tried) == 6
    assert isinstance(caught.value, ConnectionError)


async def test_discovery_skips_a_port_that_accepts_but_never_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another program (or a hung one) on a well-known port is not LM Studio (the probe's
    timeout must be caught on every Python: on 3.10 aiohttp's is not an OSError)."""
    monkeypatch.delenv("LMSTUDIO_BASE_URL", raising=False)
    with socket.socket() as silent:
        try:
            silent.bind(("127.0.0.1", 39414))
        except OSError:
            pytest.skip(
                "LM Studio's well-known port 39414 is in use here; stop what listens on it "
                "(an LM Studio or a simulator) to run this test"
            )
        silent.listen(8)
        async with lms.LMStudioClient(probe_timeout=0.2) as client:
            with anyio.fail_after(5), pytest.raises(lms.LMStudioNotFoundError) as caught:
                await client.system.version()
    assert "127.0.0.1:39414" in str(caught.value)


async def test_discovery_finds_a_server_on_a_well_known_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LMSTUDIO_BASE_URL", raising=False)
    try:
        sim = Simulator(port=22931)
        await sim.start()
    except OSError:
        pytest.skip(
            "LM Studio's well-known port 22931 is in use here; stop what listens on it "
            "(an LM Studio or a simulator) to run this test"
        )
    try:
        async with lms.LMStudioClient() as client:
            assert (await client.system.version()).version
            assert repr(client).count("22931") == 1
    finally:
        await sim.aclose()


async def test_api_token_is_sent_and_never_shown() -> None:
    async with (
        Simulator(api_token=TOKEN) as sim,
        lms.LMStudioClient(sim.base_url, api_token=TOKEN) as client,
    ):
        await client.system.version()
        assert "Ef56Gh78Ij90Kl12Mn34" not in repr(client)
        assert "Ab12Cd34" in repr(client)


async def test_a_wrong_token_is_an_authentication_error() -> None:
    wrong = "sk-lm-Ab12Cd34:XXXXXXXXXXXXXXXXXXXX"
    async with (
        Simulator(api_token=TOKEN) as sim,
        lms.LMStudioClient(sim.base_url, api_token=wrong) as client,
    ):
        with pytest.raises(lms.LMStudioAuthenticationError) as caught:
            await client.system.version()
        assert "XXXXXXXXXXXXXXXXXXXX" not in str(caught.value)
        assert "token" in str(caught.value)


async def test_a_guest_against_a_token_server_is_told_to_pass_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LM_API_TOKEN", raising=False)
    monkeypatch.delenv("LMSTUDIO_API_TOKEN", raising=False)
    async with Simulator(api_token=TOKEN) as sim, lms.LMStudioClient(sim.base_url) as client:
        with pytest.raises(lms.LMStudioAuthenticationError, match="api_token"):
            await client.system.version()


def test_a_malformed_token_is_rejected_before_sending(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(lms.LMStudioUsageError, match="sk-lm-"):
        lms.LMStudioClient(api_token="not-a-token")
    monkeypatch.setenv("LM_API_TOKEN", "sk-lm-short:short")
    with pytest.raises(lms.LMStudioUsageError, match="LM_API_TOKEN"):
        lms.LMStudioClient()


async def test_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LM_API_TOKEN", raising=False)
    monkeypatch.setenv("LMSTUDIO_API_TOKEN", TOKEN)
    async with Simulator(api_token=TOKEN) as sim, lms.LMStudioClient(sim.base_url) as client:
        assert (await client.system.version()).version


async def test_socket_drop_mid_stream_fails_in_flight_promptly_and_next_call_reconnects(
    simulator: Simulator, client: lms.LMStudioClient, model: lms.LLM
) -> None:
    for _ in range(3):
        simulator.script(MODEL, ScriptedReply(content="x " * 500, tokens_per_second=100))
    failures: list[BaseException] = []
    started, all_failed = anyio.Event(), anyio.Event()

    async def consume() -> None:
        try:
            async for _ in model.respond("go"):
                started.set()
        except lms.LMStudioConnectionError as exc:
            failures.append(exc)
            if len(failures) == 3:
                all_failed.set()

    system_before = await client.system.version()
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(consume)
        await started.wait()
        with anyio.fail_after(1.0):
            await simulator.drop_connections()
            await all_failed.wait()
    assert all("next call reconnects" in str(exc) for exc in failures)
    assert client._open_channel_count() == 0
    # The next call on the same handle reconnects.
    result = await model.respond("again")
    assert result.content == "You said: again"
    assert (await client.system.version()) == system_before


async def test_a_drop_on_one_namespace_leaves_the_others_working(
    simulator: Simulator, client: lms.LMStudioClient, model: lms.LLM
) -> None:
    embedder = await client.embedding.model()
    # Only the /llm socket is dropped, mid-stream; the /embedding socket must not notice.
    simulator.script(MODEL, ScriptedReply(content="x " * 50, faults=Faults(drop_after_fragments=3)))
    with pytest.raises(lms.LMStudioConnectionError):
        await model.respond("go")
    assert len(await embedder.embed("still here")) == 768
    assert (await model.respond("back")).content == "You said: back"


async def test_client_lifecycle_errors(simulator: Simulator) -> None:
    client = lms.LMStudioClient(simulator.base_url)
    assert "unopened" in repr(client)
    async with client:
        model = await client.llm.model(MODEL)
    with pytest.raises(lms.LMStudioClientClosedError, match="closed"):
        await client.system.version()
    with pytest.raises(lms.LMStudioClientClosedError):
        await model.respond("after close")
    await client.aclose()  # idempotent
    with pytest.raises(lms.LMStudioUsageError, match="opened once"):
        async with client:
            pass
    assert "closed" in repr(client)


async def test_closing_the_client_fails_in_flight_predictions(simulator: Simulator) -> None:
    simulator.script(MODEL, ScriptedReply(content="x " * 500, tokens_per_second=100))
    async with lms.LMStudioClient(simulator.base_url) as client:
        model = await client.llm.model(MODEL)
        prediction = model.respond("go")
        async with prediction:
            async for _ in prediction:
                break
            await client.aclose()
            with pytest.raises(lms.LMStudioClientClosedError):
                await prediction.result()
    await simulator.wait_for(lambda: simulator.connection_count() == 0)


async def _close_while_a_call_connects(base_url: str) -> BaseException:
    """Close the client while another task's first call is still connecting; return the
    call's error. The close must not wait for that attempt (it used to wait 5 s)."""
    errors: list[BaseException] = []
    client = lms.LMStudioClient(base_url)

    async def first_call() -> None:
        try:
            await client.system.version()
        except Exception as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        async with client:
            tg.start_soon(first_call)
            await anyio.sleep(0.2)  # the call is now stuck connecting or authenticating
            closing_started = anyio.current_time()
        closing_took = anyio.current_time() - closing_started
    assert closing_took < 2.5, f"closing waited {closing_took:.1f} s for the attempt"
    assert len(errors) == 1, "the call did not succeed on a closed client"
    return errors[0]


async def test_closing_the_client_cancels_a_connect_that_hangs() -> None:
    # A listener that accepts TCP but never answers the websocket upgrade.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        error = await _close_while_a_call_connects(f"127.0.0.1:{silent.getsockname()[1]}")
    assert isinstance(error, lms.LMStudioClientClosedError), repr(error)


async def test_closing_the_client_cancels_a_stalled_authentication() -> None:
    async with Simulator() as sim:
        sim.faults = Faults(stall_auth=True)
        error = await _close_while_a_call_connects(sim.base_url)
        await sim.wait_for(lambda: sim.connection_count() == 0)
    assert isinstance(error, lms.LMStudioClientClosedError), repr(error)


async def test_concurrent_calls_share_one_failed_connection_attempt() -> None:
    """Ten calls queued on one namespace while LM Studio does not answer: one attempt is
    made and all ten get its error (each used to retry after a growing backoff)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(32)
        silent.setblocking(False)
        port = silent.getsockname()[1]
        errors: list[BaseException] = []
        timeouts = lms.Timeouts(connect=0.3)
        async with lms.LMStudioClient(f"127.0.0.1:{port}", timeouts=timeouts) as client:

            async def call() -> None:
                try:
                    await client.system.version()
                except lms.LMStudioError as exc:
                    errors.append(exc)

            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    for _ in range(10):
                        tg.start_soon(call)
        attempts = 0
        while True:
            try:
                silent.accept()[0].close()
            except BlockingIOError:
                break
            attempts += 1
    assert attempts == 1
    assert len(errors) == 10
    assert all(isinstance(e, lms.LMStudioTimeoutError) for e in errors), errors
    assert len({id(e) for e in errors}) == 10, "each call raises its own exception object"


async def test_use_from_another_event_loop_is_a_clear_error(simulator: Simulator) -> None:
    async with lms.LMStudioClient(simulator.base_url) as client:
        await client.system.version()
        errors: list[BaseException] = []

        def other_loop() -> None:
            async def use() -> None:
                await client.system.version()

            try:
                anyio.run(use)
            except BaseException as exc:  # collected for the assertion below
                errors.append(exc)

        thread = threading.Thread(target=other_loop)
        thread.start()
        thread.join()
        assert len(errors) == 1
        assert isinstance(errors[0], lms.LMStudioUsageError)
        assert "different event loop" in str(errors[0])


async def test_an_exception_in_the_body_comes_out_unchanged(simulator: Simulator) -> None:
    async def app() -> None:
        async with lms.LMStudioClient(simulator.base_url) as client:
            await client.system.version()
            raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        await app()
    await simulator.wait_for(lambda: simulator.connection_count() == 0)

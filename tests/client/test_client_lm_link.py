"""LM Link: the linked devices, and models loaded, found and unloaded per device."""

from __future__ import annotations

import pytest

import lmstudio_async as lms
from lmstudio_async.testing import LinkedDevice, ModelSpec, Simulator

pytestmark = pytest.mark.anyio

LOCAL = "sim-device-local"
PEER = "sim-device-gpu-box"
MODEL = "qwen2.5-7b-instruct"


async def test_status_lists_this_machine_and_its_peer(client: lms.LMStudioClient) -> None:
    status = await client.repository.lm_link.status()
    assert status.status == "online"
    assert status.issues == []
    assert [
        (d.device_identifier, d.device_name, d.is_local, d.connected) for d in status.devices
    ] == [
        (LOCAL, "Simulated workstation", True, True),
        (PEER, "Simulated GPU box", False, True),
    ]
    assert status.device_identifier == LOCAL
    assert status.preferred_device_identifier is None


async def test_models_load_run_and_unload_per_device(
    simulator: Simulator, client: lms.LMStudioClient
) -> None:
    remote = await client.llm.load(MODEL, identifier="remote-qwen", device_identifier=PEER)
    assert remote.info.device_identifier == PEER
    assert (await remote.respond("Hi")).content == "You said: Hi"
    local = await client.llm.model(MODEL)
    assert local.info.device_identifier is None  # LM Studio reports this machine as null
    # On the peer, the model's instance there answers, not this machine's.
    on_peer = await client.llm.model(MODEL, device_identifier=PEER)
    assert (on_peer.identifier, on_peer.info.device_identifier) == ("remote-qwen", PEER)
    devices = {h.identifier: h.info.device_identifier for h in await client.llm.list_loaded()}
    assert devices[local.identifier] is None
    assert devices["remote-qwen"] == PEER
    # Unloading names the device; the wrong device does not unload it.
    with pytest.raises(lms.LMStudioModelNotFoundError):
        await client.llm.unload("remote-qwen", device_identifier=LOCAL)
    await client.llm.unload("remote-qwen", device_identifier=PEER)
    # With none on the peer, the same key loads a separate instance there.
    on_peer = await client.llm.model(MODEL, device_identifier=PEER)
    assert on_peer.info.device_identifier == PEER
    assert on_peer.identifier != local.identifier
    await on_peer.unload()  # a handle unloads on its own device
    # Without a device, LM Studio looks on every device: the peer's instance goes.
    await client.llm.load(MODEL, identifier="peer-only", device_identifier=PEER)
    await client.llm.unload("peer-only")
    assert simulator.loaded_identifiers() == [MODEL, "text-embedding-nomic-embed-text-v1.5"]


async def test_any_loaded_model_on_a_device(client: lms.LMStudioClient) -> None:
    with pytest.raises(lms.LMStudioModelNotFoundError):
        await client.llm.model(device_identifier=PEER)
    await client.llm.load(MODEL, identifier="there", device_identifier=PEER)
    assert (await client.llm.model(device_identifier=PEER)).identifier == "there"
    assert (await client.llm.model(device_identifier=LOCAL)).identifier == MODEL


async def test_embedding_models_take_a_device_too(client: lms.LMStudioClient) -> None:
    key = "text-embedding-nomic-embed-text-v1.5"
    remote = await client.embedding.load(key, identifier="remote-embed", device_identifier=PEER)
    assert remote.info.device_identifier == PEER
    assert len(await remote.embed("hello")) == 768
    again = await client.embedding.model("remote-embed", device_identifier=PEER)
    assert again.identifier == "remote-embed"
    await client.embedding.unload("remote-embed", device_identifier=PEER)


async def test_unknown_and_disconnected_devices_are_lm_studio_errors(simulator: Simulator) -> None:
    simulator.hub.devices.append(LinkedDevice("sim-device-laptop", "Laptop", connected=False))
    async with lms.LMStudioClient(simulator.base_url) as client:
        with pytest.raises(lms.LMStudioServerError, match='No LM Link device "nowhere"'):
            await client.llm.load(MODEL, device_identifier="nowhere")
        with pytest.raises(lms.LMStudioServerError, match="is not connected"):
            await client.llm.load(MODEL, device_identifier="sim-device-laptop")
        status = await client.repository.lm_link.status()
        assert [d.connected for d in status.devices] == [True, True, False]
        with pytest.raises(lms.LMStudioUsageError, match="device_identifier"):
            await client.llm.load(MODEL, device_identifier="")


async def test_estimates_are_for_the_device_asked_for() -> None:
    # 32 GiB of weights: too big for this machine (16 GiB), fits the GPU box (64 GiB).
    big = ModelSpec(model_key="big-70b", size_bytes=32 * 1024**3)
    config = {"context_length": 8192}
    async with (
        Simulator(catalog=[big], loaded=[], record_frames=True) as sim,
        lms.LMStudioClient(sim.base_url) as client,
    ):
        here = await client.llm.estimate_resources_usage("big-70b", config=config)
        there = await client.llm.estimate_resources_usage(
            "big-70b", config=config, device_identifier=PEER
        )
        sent = [f for f in sim.frames_received("llm") if f.get("endpoint") == "estimateModelUsage"]
    assert (here.passes_guardrails, there.passes_guardrails) == (False, True)
    assert here.memory == there.memory  # the same load; only the machine differs
    assert sent[-1]["parameter"]["deviceIdentifier"] == PEER


async def test_an_estimate_for_an_unknown_or_unreachable_device_fails_like_a_load(
    client: lms.LMStudioClient,
) -> None:
    with pytest.raises(lms.LMStudioServerError, match='No LM Link device "nope"'):
        await client.llm.estimate_resources_usage(MODEL, device_identifier="nope")
    with pytest.raises(lms.LMStudioServerError, match='No LM Link device "nope"'):
        await client.llm.model(MODEL, device_identifier="nope")
    await client.repository.lm_link.set_disabled(True)
    with pytest.raises(lms.LMStudioServerError, match="is not connected"):
        await client.llm.estimate_resources_usage(MODEL, device_identifier=PEER)


async def test_without_a_device_loads_go_to_the_preferred_one(
    simulator: Simulator, client: lms.LMStudioClient
) -> None:
    simulator.hub.preferred_device = PEER
    status = await client.repository.lm_link.status()
    assert status.preferred_device_identifier == PEER
    placed = await client.llm.load(MODEL, identifier="wherever")
    assert placed.info.device_identifier == PEER
    here = await client.llm.load(MODEL, identifier="here", device_identifier=LOCAL)
    assert here.info.device_identifier is None


async def test_lm_link_settings_change_what_status_reports(client: lms.LMStudioClient) -> None:
    await client.repository.lm_link.set_preferred_device(PEER)
    await client.repository.lm_link.update_device_name("Desk")
    status = await client.repository.lm_link.status()
    assert (status.preferred_device_identifier, status.device_name) == (PEER, "Desk")
    with pytest.raises(lms.LMStudioServerError, match='No LM Link device "nowhere"'):
        await client.repository.lm_link.set_preferred_device("nowhere")
    await client.repository.lm_link.set_disabled(True)
    off = await client.repository.lm_link.status()
    assert (off.status, off.issues) == ("offline", ["deviceDisabled"])
    # With LM Link off no peer is reachable, and the listing says so.
    assert [(d.device_identifier, d.connected) for d in off.devices] == [
        (LOCAL, False),
        (PEER, False),
    ]
    with pytest.raises(lms.LMStudioServerError, match="is not connected"):
        await client.llm.load(MODEL, device_identifier=PEER)
    await client.repository.lm_link.set_disabled(False)
    assert (await client.repository.lm_link.status()).status == "online"
    with pytest.raises(lms.LMStudioUsageError, match="device_name must be a non-empty str"):
        await client.repository.lm_link.update_device_name("")

"""Model search and downloads end to end: search -> options -> download -> load."""

from __future__ import annotations

import anyio
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import DownloadableModel, Simulator
from lmstudio_async.types import DownloadProgress

pytestmark = pytest.mark.anyio


async def test_search_download_and_load_a_model(
    simulator: Simulator, client: lms.LMStudioClient
) -> None:
    results = await client.repository.search_models("qwen3")
    assert [r.name for r in results] == ["qwen/qwen3-8b"]
    (entry,) = results
    assert (entry.identifier.type, entry.staff_pick, entry.exact) == ("catalog", True, False)
    options = await entry.get_download_options()
    assert [(o.quantization, o.recommended) for o in options] == [("Q4_K_M", True), ("Q8_0", False)]
    assert options[0].size_bytes == 5_027_784_704
    assert options[0].fit_estimation == "fullGPUOffload"
    assert options[1].fit_estimation == "partialGPUOffload"
    assert options[0].compatibility_type == "gguf"

    progress: list[DownloadProgress] = []
    events: list[str] = []
    key = await options[0].download(
        on_progress=progress.append, on_start_finalizing=lambda: events.append("finalizing")
    )
    assert key == "qwen/qwen3-8b"
    assert events == ["finalizing"]
    assert len(progress) == 10
    assert progress[-1].downloaded_bytes == progress[-1].total_bytes == 5_027_784_704
    fractions = [p.fraction for p in progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert all(p.speed_bytes_per_second > 0 for p in progress)

    downloaded = {m.model_key for m in await client.list_downloaded_models()}
    assert key in downloaded
    model = await client.llm.model(key)
    assert (await model.respond("Hi")).content == "You said: Hi"
    assert simulator.hub.downloads[-1].status == "finished"


async def test_two_downloaded_quantizations_are_variants_of_one_model(
    client: lms.LMStudioClient,
) -> None:
    (entry,) = await client.repository.search_models("qwen3")
    q4, q8 = await entry.get_download_options()
    assert await q4.download() == await q8.download() == "qwen/qwen3-8b"

    (listed,) = [m for m in await client.list_downloaded_models() if "qwen3-8b" in m.model_key]
    assert listed.model_key == "qwen/qwen3-8b"
    assert listed.variants == ["qwen/qwen3-8b@q4_k_m", "qwen/qwen3-8b@q8_0"]
    assert listed.selected_variant == "qwen/qwen3-8b@q4_k_m"  # the first download stays selected
    variants = await client.system.list_downloaded_model_variants("qwen/qwen3-8b")
    assert [(v.model_key, v.quantization, v.size_bytes) for v in variants] == [
        ("qwen/qwen3-8b@q4_k_m", lms.types.Quantization(name="Q4_K_M", bits=4), 5_027_784_704),
        ("qwen/qwen3-8b@q8_0", lms.types.Quantization(name="Q8_0", bits=8), 8_709_519_360),
    ]
    # The key loads the selected variant; a variant key loads that one.
    assert (await client.llm.model("qwen/qwen3-8b")).info.size_bytes == 5_027_784_704
    q8_model = await client.llm.model("qwen/qwen3-8b@q8_0")
    assert q8_model.info.quantization == lms.types.Quantization(name="Q8_0", bits=8)


async def test_search_limits_and_exact_matches(client: lms.LMStudioClient) -> None:
    everything = await client.repository.search_models("")
    assert len(everything) == 4
    assert len(await client.repository.search_models("", limit=2)) == 2
    (exact,) = await client.repository.search_models("google/gemma-3-12b")
    assert exact.exact is True
    (from_hf,) = await client.repository.search_models("llama 1b")
    assert from_hf.identifier.type == "hf"
    assert await client.repository.search_models("no such model anywhere") == []
    assert await client.repository.search_models("qwen", compatibility_types=["safetensors"]) == []


@pytest.mark.parametrize("limit", [0, 26, 2.5, True])
async def test_an_invalid_limit_is_refused_before_sending(
    client: lms.LMStudioClient, limit: object
) -> None:
    with pytest.raises(lms.LMStudioUsageError, match="limit must be an int from 1 to 25"):
        await client.repository.search_models("qwen", limit=limit)  # type: ignore[arg-type]


async def test_cancelling_a_download_reaches_lm_studio(
    simulator: Simulator, client: lms.LMStudioClient
) -> None:
    (entry,) = await client.repository.search_models("gemma")
    (option,) = await entry.get_download_options()
    started = anyio.Event()

    async def download() -> None:
        await option.download(on_progress=lambda _: started.set())

    simulator.hub.download_seconds = 600.0  # a download that would take ten minutes
    async with anyio.create_task_group() as tg:
        tg.start_soon(download)
        with anyio.fail_after(30):
            await started.wait()
        tg.cancel_scope.cancel()
    await simulator.wait_for(lambda: simulator.hub.downloads[-1].status == "cancelled")
    record = simulator.hub.downloads[-1]
    assert record.cancel_received
    assert "google/gemma-3-12b" not in {m.model_key for m in await client.list_downloaded_models()}
    assert client._open_channel_count() == 0


async def test_a_download_lm_studio_fails_raises_its_error() -> None:
    async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
        (entry,) = await client.repository.search_models("gemma")
        (option,) = await entry.get_download_options()
        sim.hub.models.clear()  # the option vanished from the hub since it was listed
        with pytest.raises(lms.LMStudioServerError, match="Cannot find a download option"):
            await option.download()


async def test_a_custom_hub_catalogue() -> None:
    async with Simulator() as sim, lms.LMStudioClient(sim.base_url) as client:
        sim.hub.models[:] = [
            DownloadableModel(name="acme/tiny-chat", quantizations=(("Q2_K", 1000),))
        ]
        (entry,) = await client.repository.search_models("tiny")
        (option,) = await entry.get_download_options()
        assert await option.download() == "acme/tiny-chat"
        assert (await client.llm.model("acme/tiny-chat")).identifier == "acme/tiny-chat"


async def test_an_unknown_compatibility_type_is_refused(client: lms.LMStudioClient) -> None:
    with pytest.raises(lms.LMStudioUsageError, match="model formats LM Studio knows"):
        await client.repository.search_models("qwen", compatibility_types=["mlx"])

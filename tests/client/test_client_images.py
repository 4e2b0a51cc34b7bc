"""Images end to end: ``client.files.prepare_image`` -> a chat -> a vision model's answer."""

from __future__ import annotations

import functools
import io
import struct
import tracemalloc
import zlib
from pathlib import Path

import anyio
import pytest

import lmstudio_async as lms
from lmstudio_async.testing import Faults, Simulator

pytestmark = pytest.mark.anyio

VISION = "google/gemma-3-4b"
TEXT_ONLY = "qwen2.5-7b-instruct"


def tiny_png(seed: int = 0) -> bytes:
    """A valid 1x1 RGB PNG; ``seed`` changes the pixel (and so the content)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(bytes([0, seed % 256, 0, 0]))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def uploads(sim: Simulator) -> list[dict[str, object]]:
    return [
        f
        for f in sim.frames_received("files")
        if f.get("type") == "rpcCall" and f.get("endpoint") == "uploadFileBase64"
    ]


async def test_a_vision_model_answers_about_the_image_it_received(
    simulator: Simulator, client: lms.LMStudioClient, tmp_path: Path
) -> None:
    data = tiny_png()
    path = tmp_path / "cat.png"
    path.write_bytes(data)
    handle = await client.files.prepare_image(path)
    assert (handle.name, handle.size_bytes, handle.file_type) == ("cat.png", len(data), "image")

    model = await client.llm.model(VISION)
    chat = lms.Chat.empty()
    chat.append("user", "What is in this picture?", images=[handle])
    result = await model.respond(chat)
    assert result.content == (
        f"I see 1 image: cat.png (image, {len(data)} bytes). You said: What is in this picture?"
    )
    sent = simulator.predictions[-1].history
    assert sent is not None
    assert sent["messages"][-1]["content"] == [
        {"type": "text", "text": "What is in this picture?"},
        {
            "type": "file",
            "name": "cat.png",
            "identifier": handle.identifier,
            "sizeBytes": len(data),
            "fileType": "image",
        },
    ]


async def test_bytes_and_file_objects_are_accepted_too(
    client: lms.LMStudioClient, tmp_path: Path
) -> None:
    from_bytes = await client.files.prepare_image(tiny_png(1))
    assert from_bytes.name == "image.png"
    named = await client.files.prepare_image(tiny_png(2), name="diagram.png")
    assert named.name == "diagram.png"
    path = tmp_path / "photo.png"
    path.write_bytes(tiny_png(3))
    with path.open("rb") as file:
        from_file = await client.files.prepare_image(file)
    assert from_file.name == "photo.png"
    from_buffer = await client.files.prepare_image(io.BytesIO(tiny_png(4)))
    assert from_buffer.name == "image.png"
    # Without an image extension the detected one is added, so LM Studio types it an image.
    jpeg = b"\xff\xd8\xff\xe0" + bytes(32)
    scan = await client.files.prepare_image(jpeg, name="scan")
    assert (scan.name, scan.file_type) == ("scan.jpg", "image")

    model = await client.llm.model(VISION)
    chat = lms.Chat.empty()
    chat.add_user_message("Compare them.", images=[from_bytes, named, from_file])
    result = await model.respond(chat)
    assert result.content.startswith("I see 3 images: image.png (image, ")
    assert "diagram.png" in result.content
    assert "photo.png" in result.content


async def test_chat_from_history_items_carry_images(client: lms.LMStudioClient) -> None:
    handle = await client.files.prepare_image(tiny_png(), name="chart.png")
    chat = lms.Chat.from_history(
        [{"role": "user", "content": "Describe this chart.", "images": [handle]}]
    )
    model = await client.llm.model(VISION)
    result = await model.respond(chat)
    assert result.content == (
        f"I see 1 image: chart.png (image, {handle.size_bytes} bytes). "
        "You said: Describe this chart."
    )


async def test_the_same_content_is_uploaded_once_per_client(
    simulator: Simulator, client: lms.LMStudioClient
) -> None:
    data = tiny_png(7)
    handles: list[lms.FileHandle] = []

    async def prepare() -> None:
        handles.append(await client.files.prepare_image(data))

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(prepare)
    again = await client.files.prepare_image(bytearray(data), name="again.png")
    assert len(uploads(simulator)) == 1
    assert {h.identifier for h in [*handles, again]} == {handles[0].identifier}
    assert again.name == "again.png"
    await client.files.prepare_image(tiny_png(8))
    assert len(uploads(simulator)) == 2


async def test_an_image_is_sent_again_after_a_reconnect(
    simulator: Simulator, client: lms.LMStudioClient
) -> None:
    # LM Studio deletes a client's files with its last socket; a cached handle would be stale.
    first = await client.files.prepare_image(tiny_png())
    await simulator.drop_connections()
    second = await client.files.prepare_image(tiny_png())
    assert len(uploads(simulator)) == 2
    model = await client.llm.model(VISION)
    chat = lms.Chat.empty()
    chat.add_user_message("Still there?", images=[second])
    assert (await model.respond(chat)).content.startswith("I see 1 image")
    # LM Studio gives the new upload a fresh identifier: the old handle names a deleted file.
    assert second.identifier != first.identifier
    stale = lms.Chat.empty()
    stale.add_user_message("And this one?", images=[first])
    with pytest.raises(lms.LMStudioServerError, match="not found"):
        await model.respond(stale)


async def test_a_ten_megabyte_image_works(client: lms.LMStudioClient) -> None:
    data = tiny_png() + bytes(10 * 1024 * 1024)
    handle = await client.files.prepare_image(data, name="big.png")
    assert handle.size_bytes == len(data)
    model = await client.llm.model(VISION)
    chat = lms.Chat.empty()
    chat.add_user_message("Big one", images=[handle])
    assert f"big.png (image, {len(data)} bytes)" in (await model.respond(chat)).content


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, plain text", b"%PDF-1.7\n...", b"RIFF\x00\x00\x00\x00WAVEfmt "],
    ids=["empty", "text", "pdf", "wav"],
)
async def test_a_non_image_is_refused_before_upload(
    simulator: Simulator, client: lms.LMStudioClient, content: bytes, tmp_path: Path
) -> None:
    with pytest.raises(lms.LMStudioUsageError, match="not an image LM Studio can read"):
        await client.files.prepare_image(content, name="notes.png")
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(lms.LMStudioUsageError, match=r"notes\.txt is not an image"):
        await client.files.prepare_image(path)
    assert uploads(simulator) == []


async def test_bad_sources_get_clear_errors(client: lms.LMStudioClient, tmp_path: Path) -> None:
    with pytest.raises(lms.LMStudioUsageError, match="cannot read the image file"):
        await client.files.prepare_image(tmp_path / "missing.png")
    with pytest.raises(lms.LMStudioUsageError, match=r"binary mode \('rb'\)"):
        await client.files.prepare_image(io.StringIO("text"))  # type: ignore[arg-type]
    with pytest.raises(lms.LMStudioUsageError, match="takes a path, bytes or a binary file"):
        await client.files.prepare_image(42)  # type: ignore[arg-type]


async def test_a_model_without_vision_refuses_an_image_like_lm_studio(
    client: lms.LMStudioClient,
) -> None:
    handle = await client.files.prepare_image(tiny_png())
    model = await client.llm.model(TEXT_ONLY)
    chat = lms.Chat.empty()
    chat.add_user_message("What is this?", images=[handle])
    with pytest.raises(lms.LMStudioServerError, match="Model does not support images"):
        await model.respond(chat)
    assert client._open_channel_count() == 0


async def test_a_handle_from_another_client_is_unknown_to_the_server(
    simulator: Simulator,
) -> None:
    async with lms.LMStudioClient(simulator.base_url) as uploader:
        handle = await uploader.files.prepare_image(tiny_png())
        async with lms.LMStudioClient(simulator.base_url) as other:
            model = await other.llm.model(VISION)
            chat = lms.Chat.empty()
            chat.add_user_message("Whose file?", images=[handle])
            with pytest.raises(lms.LMStudioServerError, match="not found"):
                await model.respond(chat)


async def test_a_second_caller_keeps_its_own_timeout_while_another_uploads(
    simulator: Simulator, client: lms.LMStudioClient
) -> None:
    await client.system.info()  # connected before the slow uploads start
    simulator.faults = Faults(rpc_delay=30.0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(client.files.prepare_image, tiny_png(9))
        await simulator.wait_for(lambda: len(uploads(simulator)) == 1, timeout=20)
        # The first upload holds the content's lock for 30 s; this caller allowed 2 s.
        timed_out = pytest.raises(lms.LMStudioTimeoutError, match="within 2 s")
        with anyio.fail_after(20), timed_out:
            await client.files.prepare_image(tiny_png(9), timeout=2)
        tg.cancel_scope.cancel()
    assert client.files._locks == {}


async def test_without_timeout_the_wait_for_another_upload_is_bounded_by_timeouts_rpc(
    simulator: Simulator,
) -> None:
    timeouts = lms.Timeouts(rpc=2.0)
    async with lms.LMStudioClient(simulator.base_url, timeouts=timeouts) as client:
        await client.system.info()
        simulator.faults = Faults(rpc_delay=30.0)
        async with anyio.create_task_group() as tg:
            # The first caller allowed its upload a minute; the second gave no timeout=.
            tg.start_soon(functools.partial(client.files.prepare_image, tiny_png(10), timeout=60))
            await simulator.wait_for(lambda: len(uploads(simulator)) == 1, timeout=20)
            timed_out = pytest.raises(lms.LMStudioTimeoutError, match=r"Timeouts\.rpc")
            with anyio.fail_after(20), timed_out:
                await client.files.prepare_image(tiny_png(10))
            tg.cancel_scope.cancel()
        assert client.files._locks == {}


async def test_the_upload_lock_table_does_not_grow(client: lms.LMStudioClient) -> None:
    for seed in range(5):
        await client.files.prepare_image(tiny_png(seed))
        with anyio.CancelScope() as scope:
            scope.cancel()
            await client.files.prepare_image(tiny_png(seed + 100))
    assert client.files._locks == {}


async def test_an_oversized_file_is_refused_without_reading_it(
    simulator: Simulator, client: lms.LMStudioClient, tmp_path: Path
) -> None:
    path = tmp_path / "huge.png"
    with path.open("wb") as file:
        file.write(tiny_png())
        file.truncate(200 * 1024 * 1024)  # sparse: no disk space used
    tracemalloc.start()
    try:
        with pytest.raises(lms.LMStudioUsageError, match=r"huge\.png is 209,715,200 bytes, more"):
            await client.files.prepare_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024  # the file was refused by its size, not read whole
    too_big = pytest.raises(lms.LMStudioUsageError, match="is more than the 67,108,864 bytes")
    with path.open("rb") as file, too_big:
        await client.files.prepare_image(file)
    assert uploads(simulator) == []


@pytest.mark.parametrize(
    "name", ["../../etc/passwd.png", "dir/x.png", "dir\\x.png", "..", " ", "a\nb.png"]
)
async def test_a_name_must_be_a_plain_file_name(
    simulator: Simulator, client: lms.LMStudioClient, name: str
) -> None:
    with pytest.raises(lms.LMStudioUsageError, match="plain file name"):
        await client.files.prepare_image(tiny_png(), name=name)
    assert uploads(simulator) == []

"""Catalogue files: ``read_catalog`` and ``simulate --catalog FILE`` serve the models listed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import lmstudio
import pytest
from sim_helpers import raw_client

from lmstudio_async.testing import Simulator, read_catalog

pytestmark = pytest.mark.anyio

LLAMA_PATH = "hugging-quants/Llama-3.2-1B-Instruct-Q8_0-GGUF/llama-3.2-1b-instruct-q8_0.gguf"
CATALOG: dict[str, Any] = {
    "models": [
        {
            "modelKey": "llama-3.2-1b-instruct",
            "publisher": "hugging-quants",
            "path": LLAMA_PATH,
            "trainedForToolUse": True,
            "loaded": True,
        },
        {
            "modelKey": "mobilevlm_v2-1.7b",
            "vision": True,
            "maxContextLength": 2048,
            "defaultContextLength": 2048,
        },
        {"modelKey": "nomic-embed", "type": "embedding", "embeddingDimensions": 4, "loaded": True},
    ]
}


def _write(tmp_path: Path, content: Any) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


async def test_a_catalogue_file_gives_the_simulator_its_models(tmp_path: Path) -> None:
    catalog = read_catalog(_write(tmp_path, CATALOG))
    assert catalog.loaded == ["llama-3.2-1b-instruct", "nomic-embed"]
    async with (
        Simulator(catalog=catalog.models, loaded=catalog.loaded) as sim,
        raw_client(sim, "system") as system,
        lmstudio.AsyncClient(f"{sim.host}:{sim.port}") as client,
    ):
        downloaded = {
            m["modelKey"]: m for m in (await system.rpc("listDownloadedModels"))["result"]
        }
        loaded = [m.identifier for m in await client.llm.list_loaded()]
        vector = await (await client.embedding.model("nomic-embed")).embed("hi")
    assert list(downloaded) == ["llama-3.2-1b-instruct", "mobilevlm_v2-1.7b", "nomic-embed"]
    llama = downloaded["llama-3.2-1b-instruct"]
    assert llama["path"] == LLAMA_PATH
    assert llama["publisher"] == "hugging-quants"
    assert llama["trainedForToolUse"] is True
    assert downloaded["mobilevlm_v2-1.7b"]["vision"] is True
    assert downloaded["mobilevlm_v2-1.7b"]["publisher"] == "lmstudio-community"  # the default
    assert downloaded["nomic-embed"]["type"] == "embedding"
    assert loaded == ["llama-3.2-1b-instruct"]
    assert len(vector) == 4


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ({"model": []}, "Object contains unknown field `model`"),
        ({"models": [{"path": "a/b"}]}, "missing required field `modelKey`"),
        (
            {"models": [{"modelKey": "a", "vison": True}]},
            "unknown field `vison` - at `$.models[0]`",
        ),
        ({"models": [{"modelKey": "a", "type": "tts"}]}, "`$.models[0].type`"),
        ({"models": [{"modelKey": "a", "maxContextLength": 0}]}, "Expected `int` >= 1"),
        (
            {"models": [{"modelKey": "a"}, {"modelKey": "A"}]},
            "models[1]: modelKey 'A' appears twice",
        ),
        (
            {
                "models": [
                    {"modelKey": "a", "path": "p/r/f.gguf"},
                    {"modelKey": "b", "path": "P/R/F.gguf"},
                ]
            },
            "models[1]: path 'P/R/F.gguf' is already models[0]'s",
        ),
        (
            {"models": [{"modelKey": "a", "maxContextLength": 10, "defaultContextLength": 20}]},
            "defaultContextLength 20 exceeds maxContextLength 10",
        ),
    ],
)
def test_a_bad_catalogue_is_refused_naming_file_and_fault(
    tmp_path: Path, content: Any, message: str
) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(ValueError, match="catalog") as caught:
        read_catalog(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_a_missing_catalogue_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot read catalogue .*nope\.json.*No such file"):
        read_catalog(tmp_path / "nope.json")


async def test_simulate_refuses_a_bad_catalogue_at_start(tmp_path: Path) -> None:
    path = _write(tmp_path, {"models": [{"modelKey": "a", "vison": True}]})
    done = await anyio.run_process(
        [sys.executable, "-m", "lmstudio_async", "simulate", "--port", "0", "--catalog", str(path)],
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == b""
    error = done.stderr.decode()
    assert error.startswith("lmstudio-async simulate: invalid catalogue")
    assert "unknown field `vison`" in error


def test_the_readme_catalogue_example_is_valid(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    blocks = [block.split("```", 1)[0] for block in readme.split("```json\n")[1:]]
    # The README also shows a rules file: the catalogue is the block with the "models" list.
    catalogues = [block for block in blocks if block.lstrip().startswith('{"models"')]
    assert len(catalogues) == 1, "the README shows one catalogue example"
    catalog = read_catalog(_write(tmp_path, catalogues[0]))
    assert catalog.loaded == ["llama-3.2-1b-instruct"]


def test_the_official_suite_catalogue_is_valid() -> None:
    path = Path(__file__).resolve().parents[2] / "scripts" / "official-suite-catalog.json"
    catalog = read_catalog(path)
    # The models the official suite's README asks to have loaded, by their default identifiers.
    assert catalog.loaded == [
        "llama-3.2-1b-instruct",
        "mobilevlm_v2-1.7b",
        "qwen2.5-7b-instruct-1m",
        "text-embedding-nomic-embed-text-v1.5",
    ]


async def test_the_module_entry_point_refuses_a_bad_catalogue_too(tmp_path: Path) -> None:
    path = _write(tmp_path, {"models": [{"modelKey": ""}]})
    done = await anyio.run_process(
        [sys.executable, "-m", "lmstudio_async.testing", "--catalog", str(path)], check=False
    )
    assert done.returncode == 2
    assert "invalid catalogue" in done.stderr.decode()
    assert "Expected `str` of length >= 1 - at `$.models[0].modelKey`" in done.stderr.decode()

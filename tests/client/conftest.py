"""Fixtures for end-to-end client tests: a simulator and a client connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import lmstudio_async as lms
from lmstudio_async.testing import Simulator

from ._wire_schema import assert_client_frames_valid


@pytest.fixture
async def client(simulator: Simulator) -> AsyncIterator[lms.LMStudioClient]:
    """A client talking to the ``simulator`` fixture; every frame it sent is schema-checked."""
    async with lms.LMStudioClient(simulator.base_url) as client:
        yield client
    assert_client_frames_valid(simulator)


@pytest.fixture
async def model(client: lms.LMStudioClient) -> lms.LLM:
    return await client.llm.model("qwen2.5-7b-instruct")

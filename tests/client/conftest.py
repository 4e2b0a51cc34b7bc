"""Fixtures for end-to-end client tests: a simulator and a client connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import lmstudio_async as lms
from lmstudio_async.testing import Simulator


@pytest.fixture
async def client(simulator: Simulator) -> AsyncIterator[lms.LMStudioClient]:
    """A client talking to the ``simulator`` fixture (whose frames are schema-checked)."""
    async with lms.LMStudioClient(simulator.base_url) as client:
        yield client


@pytest.fixture
async def model(client: lms.LMStudioClient) -> lms.LLM:
    return await client.llm.model("qwen2.5-7b-instruct")

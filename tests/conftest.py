"""Shared fixtures: the anyio backend, a running simulator, the protocol JSON schema."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _lms_client_frames import assert_client_frames_valid
from _protocol_schema import SCHEMA_MISSING, SCHEMA_PATH, misconfigured_schema

from lmstudio_async.testing import Simulator


def pytest_configure(config: pytest.Config) -> None:
    problem = misconfigured_schema()
    if problem is not None:
        raise pytest.UsageError(problem)


@pytest.fixture
def anyio_backend() -> str:
    """Run every ``@pytest.mark.anyio`` test on asyncio (the SDK targets asyncio)."""
    return "asyncio"


@pytest.fixture
async def simulator(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    """A started simulator on an ephemeral loopback port, recording every frame.

    Afterwards every frame a client sent to it is checked against the protocol's JSON schema,
    so each test that uses it also proves the client speaks the protocol. The simulator's own
    tests send malformed frames on purpose and are left out.
    """
    async with Simulator(record_frames=True) as sim:
        yield sim
    if "simulator" not in request.path.parts:
        assert_client_frames_valid(sim)


def load_lms_schema() -> dict[str, Any]:
    """The protocol's JSON schema (see ``_protocol_schema``), or skip the test saying how to
    get it."""
    if not SCHEMA_PATH.is_file():
        pytest.skip(SCHEMA_MISSING)
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


@pytest.fixture(scope="session")
def lms_schema() -> dict[str, Any]:
    """Fixture form of :func:`load_lms_schema`."""
    return load_lms_schema()

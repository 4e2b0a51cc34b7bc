"""pytest plugin (registered through the ``pytest11`` entry point): simulator fixtures.

Installing ``lmstudio-async`` gives every pytest suite two fixtures, with no conftest code:

* ``lmstudio_simulator``: a started :class:`Simulator` on a free loopback port, closed after
  the test. ``@pytest.mark.lmstudio_simulator(**kwargs)`` passes keyword arguments to
  ``Simulator(...)`` (``catalog=``, ``loaded=``, ``tokens_per_second=``...).
* ``lmstudio_client``: an open ``lmstudio_async.LMStudioClient`` connected to it.

Async tests run under anyio's pytest plugin (installed with anyio): a test that uses either
fixture runs on it without a marker, because the fixtures request ``anyio_backend``; other
async tests need ``@pytest.mark.anyio``. The SDK runs on asyncio: if trio is installed,
anyio also offers a trio run of each test, which these fixtures skip (define an
``anyio_backend`` fixture returning ``"asyncio"`` to avoid it). ``pytest -p no:lmstudio_async``
switches the plugin off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from ._server import Simulator

if TYPE_CHECKING:
    from .. import LMStudioClient

__all__ = ["lmstudio_client", "lmstudio_simulator"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "lmstudio_simulator(**kwargs): keyword arguments for the lmstudio_simulator fixture's "
        "Simulator(...)",
    )


@pytest.fixture
async def lmstudio_simulator(
    request: pytest.FixtureRequest, anyio_backend_name: str
) -> AsyncIterator[Simulator]:
    """A started LM Studio simulator on ``127.0.0.1`` (any free port), closed afterwards."""
    if anyio_backend_name != "asyncio":
        pytest.skip(f"lmstudio_async runs on asyncio, not {anyio_backend_name}")
    kwargs: dict[str, Any] = {}
    # Closest marker last, so a test's own marker wins over its module's.
    for marker in reversed(list(request.node.iter_markers("lmstudio_simulator"))):
        if marker.args:
            raise pytest.UsageError(
                "@pytest.mark.lmstudio_simulator takes keyword arguments only "
                "(those of lmstudio_async.testing.Simulator)"
            )
        kwargs.update(marker.kwargs)
    async with Simulator(**kwargs) as simulator:
        yield simulator


@pytest.fixture
async def lmstudio_client(lmstudio_simulator: Simulator) -> AsyncIterator[LMStudioClient]:
    """An open ``LMStudioClient`` connected to ``lmstudio_simulator``, closed afterwards."""
    from .. import LMStudioClient  # the simulator itself stays independent of the client

    async with LMStudioClient(lmstudio_simulator.base_url) as client:
        yield client

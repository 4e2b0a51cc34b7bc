"""pytest plugin (registered through the ``pytest11`` entry point): simulator fixtures.

Installing ``lmstudio-async`` gives every pytest suite two fixtures, with no conftest code:

* ``lmstudio_simulator``: a started :class:`Simulator` on a free loopback port, closed after
  the test. ``@pytest.mark.lmstudio_simulator(**kwargs)`` passes keyword arguments to
  ``Simulator(...)`` (``catalog=``, ``loaded=``, ``tokens_per_second=``...).
* ``lmstudio_client``: an open ``lmstudio_async.LMStudioClient`` connected to it.

Both are opened in the event loop the test runs in, whichever plugin runs it:

* pytest-asyncio, for a test it runs (``@pytest.mark.asyncio``, or every ``async def`` test
  with ``asyncio_mode = auto``), in the loop of the test's ``loop_scope``;
* anyio's pytest plugin (installed with anyio) otherwise: an ``async def`` test that takes
  a fixture as a parameter needs no marker (one that gets it through a fixture of its own
  needs ``@pytest.mark.anyio``). If trio is installed, anyio also offers a trio run of each test,
  which these fixtures skip (define an ``anyio_backend`` fixture returning ``"asyncio"`` to
  avoid it).

A plain ``def`` test cannot use them (the simulator serves from the test's event loop, and a
plain test has none running): the fixture fails the test saying so. To run a program in
another language against the simulator, write an ``async def`` test and
``await anyio.run_process([...])``. ``pytest -p no:lmstudio_async`` switches the plugin off.

Nothing of the simulator or the client is imported until a fixture is used: pytest imports
this module at every start in every project that installs the package.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from .. import LMStudioClient
    from ._server import Simulator

__all__ = ["lmstudio_client", "lmstudio_simulator"]

_NAMES = ("lmstudio_simulator", "lmstudio_client")
_T = TypeVar("_T")
_LOOP_SCOPES = ("function", "class", "module", "package", "session")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "lmstudio_simulator(**kwargs): keyword arguments for the lmstudio_simulator fixture's "
        "Simulator(...)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> None:
    # An async test that asks for the fixtures and that pytest-asyncio will not run goes to
    # anyio, the way `@pytest.mark.anyio` does it: requesting `anyio_backend` before the item
    # is made, so anyio parametrizes it by backend alongside any other parameters. Doing it
    # here, rather than the fixtures requesting `anyio_backend`, keeps anyio away from the
    # tests pytest-asyncio runs: anyio would open their async fixtures in a loop of its own.
    if not (collector.istestfunction(obj, name) and inspect.iscoroutinefunction(obj)):
        return
    marks = list(getattr(obj, "pytestmark", ()))
    requested = set(inspect.signature(obj).parameters)
    for mark in marks:
        if mark.name == "usefixtures":
            requested.update(mark.args)
    if requested.isdisjoint(_NAMES):
        return
    if _pytest_asyncio_will_run(collector, marks):
        return
    pytest.mark.usefixtures("anyio_backend")(obj)


def _pytest_asyncio_will_run(collector: pytest.Collector, marks: list[pytest.Mark]) -> bool:
    config = collector.config
    if not config.pluginmanager.has_plugin("asyncio"):
        return False
    if any(mark.name == "asyncio" for mark in marks):
        return True
    if collector.get_closest_marker("asyncio") is not None:
        return True
    mode = config.getoption("asyncio_mode", None) or config.getini("asyncio_mode")
    return str(mode) == "auto"


def _run_by_pytest_asyncio(item: pytest.Item) -> bool:
    # pytest-asyncio marks every test it runs with `asyncio` (auto mode adds the marker).
    return (
        item.config.pluginmanager.has_plugin("asyncio")
        and item.get_closest_marker("asyncio") is not None
    )


def _variant(request: pytest.FixtureRequest, what: str) -> str:
    """The fixture that opens ``what`` in the loop the requesting test runs in."""
    item = request.node
    if not isinstance(item, pytest.Function) or not inspect.iscoroutinefunction(item.function):
        pytest.fail(
            f"lmstudio_{what} needs an `async def` test: the simulator and the client serve from "
            "the test's event loop, and a plain `def` test has none running. To run another "
            "program against the simulator, make the test `async def` and "
            "`await anyio.run_process([...])`.",
            pytrace=False,
        )
    if _run_by_pytest_asyncio(item):
        marker = item.get_closest_marker("asyncio")
        assert marker is not None
        try:
            default = item.config.getini("asyncio_default_test_loop_scope")
        except ValueError:  # pytest-asyncio before 0.24: tests run in function-scoped loops
            default = "function"
        scope = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope") or default
        if scope not in _LOOP_SCOPES:
            pytest.fail(f"unknown pytest-asyncio loop_scope {scope!r}", pytrace=False)
        return f"_lmstudio_{what}_asyncio_{scope}"
    if "anyio_backend" in request.fixturenames:
        backend = request.getfixturevalue("anyio_backend_name")
        if backend != "asyncio":
            pytest.skip(f"lmstudio_async runs on asyncio, not {backend}")
        return f"_lmstudio_{what}_anyio"
    pytest.fail(
        f"lmstudio_{what} needs the test run by anyio's pytest plugin (`@pytest.mark.anyio`) or "
        "by pytest-asyncio (`@pytest.mark.asyncio`): no plugin runs this async test on asyncio "
        "(only a test that takes the fixtures as parameters gets anyio without a marker).",
        pytrace=False,
    )


@pytest.fixture
def lmstudio_simulator(request: pytest.FixtureRequest) -> Simulator:
    """A started LM Studio simulator on ``127.0.0.1`` (any free port), closed afterwards."""
    simulator: Simulator = request.getfixturevalue(_variant(request, "simulator"))
    return simulator


@pytest.fixture
def lmstudio_client(request: pytest.FixtureRequest, lmstudio_simulator: Simulator) -> Any:
    """An open ``LMStudioClient`` connected to ``lmstudio_simulator``, closed afterwards."""
    return request.getfixturevalue(_variant(request, "client"))


def _simulator_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    # Closest marker last, so a test's own marker wins over its module's.
    for marker in reversed(list(request.node.iter_markers("lmstudio_simulator"))):
        if marker.args:
            raise pytest.UsageError(
                "@pytest.mark.lmstudio_simulator takes keyword arguments only "
                "(those of lmstudio_async.testing.Simulator)"
            )
        kwargs.update(marker.kwargs)
    return kwargs


async def _open_simulator(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    from ._server import Simulator

    async with Simulator(**_simulator_options(request)) as simulator:
        yield simulator


async def _open_client(lmstudio_simulator: Simulator) -> AsyncIterator[LMStudioClient]:
    from .. import LMStudioClient  # the simulator itself stays independent of the client

    async with LMStudioClient(lmstudio_simulator.base_url) as client:
        yield client


# The variants `_variant` picks from. anyio runs an async fixture when the test involves
# `anyio_backend`; pytest-asyncio runs those made with its own decorator, in the loop of their
# `loop_scope`, hence one per scope.
@pytest.fixture
async def _lmstudio_simulator_anyio(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    async for simulator in _open_simulator(request):
        yield simulator


@pytest.fixture
async def _lmstudio_client_anyio(
    lmstudio_simulator: Simulator,
) -> AsyncIterator[LMStudioClient]:
    async for client in _open_client(lmstudio_simulator):
        yield client


async def _held_open(opener: AsyncIterator[_T]) -> AsyncIterator[_T]:
    """``opener``'s value, kept open by a task of its own until the fixture is torn down.

    pytest-asyncio sets a fixture up and tears it down in two different tasks, and the
    simulator's and the client's cancel scopes must be exited by the task that entered them.
    """
    ready: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()

    async def hold() -> None:
        try:
            async for value in opener:
                ready.set_result(value)
                await stop.wait()
        except BaseException as exc:
            if ready.done():
                raise  # a failure while closing: the teardown reports it
            ready.set_exception(exc)  # a failure while opening: the setup reports it

    task = asyncio.create_task(hold())
    try:
        yield await ready
    finally:
        stop.set()
        await task


def _define_pytest_asyncio_variants() -> None:
    try:
        # By name: pytest-asyncio is optional, and has no type information of its own.
        pytest_asyncio: Any = importlib.import_module("pytest_asyncio")
    except ImportError:  # not installed: no test can be run by it
        return
    for scope in _LOOP_SCOPES:

        async def simulator(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
            async for opened in _held_open(_open_simulator(request)):
                yield opened

        async def client(lmstudio_simulator: Simulator) -> AsyncIterator[LMStudioClient]:
            async for opened in _held_open(_open_client(lmstudio_simulator)):
                yield opened

        for what, function in (("simulator", simulator), ("client", client)):
            name = f"_lmstudio_{what}_asyncio_{scope}"
            globals()[name] = pytest_asyncio.fixture(function, name=name, loop_scope=scope)


_define_pytest_asyncio_variants()

"""Library conventions a newcomer meets first: completion, exception names, tasks, docs."""

from __future__ import annotations

import ast
import asyncio
import copy
import importlib
import inspect
import pickle
import pkgutil
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

import lmstudio_async as lms
from lmstudio_async.testing import Faults, Simulator
from lmstudio_async.types import prediction as prediction_types

pytestmark = pytest.mark.anyio


def test_dir_lists_the_lazily_imported_names_before_their_first_use() -> None:
    # A fresh interpreter: nothing has touched the lazy names yet.
    done = subprocess.run(
        [sys.executable, "-c", "import lmstudio_async as l; print(' '.join(dir(l)))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    listed = set(done.stdout.split())
    assert {"Tool", "GuardDecision", "ActResult", "ActRound", "GBNFGrammar"} <= listed
    assert set(lms.__all__) <= listed


def test_exceptions_print_under_the_public_module() -> None:
    error = lms.LMStudioNotFoundError("No LM Studio answered.", hosts_tried=("127.0.0.1:1234",))
    (line,) = traceback.format_exception_only(type(error), error)
    assert line == "lmstudio_async.LMStudioNotFoundError: No LM Studio answered.\n"
    for name in lms.__all__:
        value = getattr(lms, name)
        if isinstance(value, type) and issubclass(value, lms.LMStudioError):
            assert value.__module__ == "lmstudio_async", name
            assert getattr(lms, value.__qualname__) is value  # so pickle finds it


def _every_error_class() -> list[type[lms.LMStudioError]]:
    # Import every module first: private errors live wherever they are raised.
    for module in pkgutil.walk_packages(lms.__path__, "lmstudio_async."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found: list[type[lms.LMStudioError]] = []
    todo: list[type[lms.LMStudioError]] = [lms.LMStudioError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_the_package_raises_is_a_public_class() -> None:
    # A private class would print under a path users cannot import or catch by name.
    classes = [c for c in _every_error_class() if c.__module__.startswith("lmstudio_async")]
    assert len(classes) == len([n for n in lms.__all__ if n.endswith("Error")])
    for cls in classes:
        assert cls.__module__ == "lmstudio_async", cls
        assert getattr(lms, cls.__qualname__) is cls


@pytest.mark.parametrize(
    "error",
    [
        lms.LMStudioStructuredOutputError("Bad JSON.", content="{", stop_reason="eosFound"),
        lms.LMStudioRequestRejectedError("Refused.", kind="rpcEndpointUnknown", endpoint="x"),
        lms.LMStudioServerError("Boom.", payload={"title": "Boom"}),
        lms.LMStudioNotFoundError("Nobody.", hosts_tried=("127.0.0.1:1234",)),
    ],
    ids=lambda error: type(error).__name__,
)
def test_errors_with_details_pickle_and_copy_with_them(error: lms.LMStudioError) -> None:
    for copied in (pickle.loads(pickle.dumps(error)), copy.copy(error), copy.deepcopy(error)):
        assert type(copied) is type(error)
        assert copied.args == error.args
        assert vars(copied) == vars(error)


async def test_an_operation_cut_off_by_aclose_names_the_public_closed_error(
    simulator: Simulator,
) -> None:
    simulator.faults = Faults(stall_after_fragments=1)
    client = lms.LMStudioClient(simulator.base_url)
    model = await client.llm.model("qwen2.5-7b-instruct")
    prediction = model.respond("Hi")
    await anext(aiter(prediction))
    await client.aclose()
    with pytest.raises(lms.LMStudioClientClosedError) as caught:
        await prediction
    error = caught.value
    assert type(error) is lms.LMStudioClientClosedError
    assert isinstance(error, lms.LMStudioConnectionError)  # the socket went away under it too
    (line,) = traceback.format_exception_only(type(error), error)
    assert line.startswith("lmstudio_async.LMStudioClientClosedError: The LMStudioClient was")
    assert repr(error).startswith("LMStudioClientClosedError(")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert isinstance(copy, lms.LMStudioClientClosedError)
    assert isinstance(copy, lms.LMStudioConnectionError)
    assert copy.args == error.args


def test_a_user_subclass_of_the_sdk_errors_keeps_its_own_name() -> None:
    class AppError(lms.LMStudioError):
        pass

    assert AppError.__module__ == __name__
    assert AppError.__qualname__.endswith("AppError")


def test_exceptions_still_pickle() -> None:
    error = lms.LMStudioTimeoutError("Too slow.")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is lms.LMStudioTimeoutError
    assert str(copy) == "Too slow."


async def test_the_documented_way_to_run_a_prediction_as_a_task(model: lms.LLM) -> None:
    task = asyncio.create_task(model.respond("Hi").result())
    result = await task
    assert result.content == "You said: Hi"


async def test_the_handle_itself_is_not_a_coroutine_as_the_docs_say(model: lms.LLM) -> None:
    prediction = model.respond("Hi")
    with pytest.raises(TypeError):
        asyncio.create_task(prediction)  # type: ignore[arg-type]  # noqa: RUF006
    await prediction.cancel()


def test_the_docs_show_the_task_way() -> None:
    doc = inspect.getdoc(lms.PredictionStream)
    assert doc is not None
    assert "create_task(prediction.result())" in doc
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert 'asyncio.create_task(model.respond("Hi").result())' in readme
    assert "every call is a coroutine" not in readme


def _attribute_docstrings(cls: type) -> dict[str, str]:
    """Field name -> the string literal that follows it in the class body."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0]
    assert isinstance(body, ast.ClassDef)
    docs: dict[str, str] = {}
    for field, after in zip(body.body, body.body[1:], strict=False):
        if (
            isinstance(field, ast.AnnAssign)
            and isinstance(field.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[field.target.id] = after.value.value
    return docs


def test_every_prediction_stats_field_is_documented() -> None:
    docs = _attribute_docstrings(prediction_types.PredictionStats)
    fields = prediction_types.PredictionStats.__struct_fields__
    assert set(fields) == set(docs), set(fields) - set(docs)
    assert "seconds" in docs["time_to_first_token_sec"].lower()


def test_respond_lists_the_errors_it_raises() -> None:
    doc = inspect.getdoc(lms.LLM.respond)
    assert doc is not None
    raises = doc.split("Raises:", 1)[1]
    for error in (
        lms.LMStudioUsageError,
        lms.LMStudioConfigError,
        lms.LMStudioConnectionError,
        lms.LMStudioTimeoutError,
        lms.LMStudioModelNotFoundError,
        lms.LMStudioChannelError,
        lms.LMStudioStructuredOutputError,
    ):
        assert f"{error.__name__}:" in raises, error.__name__

"""A prediction as Server-Sent Events, for any web framework that streams text.

The browser's ``EventSource`` reads them: each fragment of the answer is a default (``message``)
event, reasoning fragments are ``reasoning`` events, and the end is one ``done`` event with the
stats, or one ``error`` event. Framework-free on purpose: a Starlette/FastAPI
``StreamingResponse``, an aiohttp ``StreamResponse`` or a plain ASGI app all send ``str``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

import msgspec

from .._errors import LMStudioError, LMStudioUsageError

if TYPE_CHECKING:
    from ._stream import PredictionStream

__all__ = ["server_sent_events"]

_encode = msgspec.json.Encoder().encode


def _event(data: Any, event: str | None = None) -> str:
    # JSON keeps the data on one line: a newline in the model's text can't end the event early.
    head = "" if event is None else f"event: {event}\n"
    return f"{head}data: {_encode(data).decode()}\n\n"


async def server_sent_events(prediction: PredictionStream[Any]) -> AsyncGenerator[str, None]:
    """Yield ``prediction`` as complete SSE events (each a ``str`` ending in a blank line).

    * ``data: "<text>"``: a fragment of the answer, as a JSON string.
    * ``event: reasoning`` / ``data: "<text>"``: a fragment of a reasoning model's thinking.
    * ``event: done`` / ``data: {...}``: the last event, :class:`PredictionStats` in LM Studio's
      JSON form (``stopReason``, ``predictedTokensCount``, ``timeToFirstTokenSec``, ...).
    * ``event: error`` / ``data: {"message": "..."}``: the prediction failed with an
      :class:`LMStudioError`; the error is then raised, so the server logs it as well.

    The prediction runs inside ``async with``: when the generator is closed or cancelled
    before the end (the browser went away), LM Studio is told to stop. Close the
    ``EventSource`` on ``done`` and ``error`` in the page: otherwise the browser reconnects,
    which sends the request again.

    A prediction streams once: if it was already iterated (even partly) or its result awaited,
    the first iteration raises ``LMStudioUsageError`` instead of a ``done`` event with no text
    before it. Call ``server_sent_events()`` on a fresh ``model.respond(...)``.
    """
    if prediction.done or prediction._accumulator.fragment_count > 0:
        # Replaying would need every fragment kept after it was handed out; the caller
        # already consumed them, so an answer-less event stream would only mislead the page.
        raise LMStudioUsageError(
            "server_sent_events() needs a prediction nobody has read yet: this one was already "
            "iterated or awaited. Call it on a new model.respond(...) handle."
        )
    try:
        async with prediction:
            async for fragment in prediction:
                if fragment.is_structural or not fragment.content:
                    continue
                if fragment.reasoning_type == "none":
                    yield _event(fragment.content)
                else:
                    yield _event(fragment.content, "reasoning")
            result = await prediction.result()
    except LMStudioError as exc:
        yield _event({"message": " ".join(str(exc).split())}, "error")
        raise
    yield _event(result.stats, "done")

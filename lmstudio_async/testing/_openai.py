"""LM Studio's OpenAI-compatible REST endpoints, served on the same port as the websockets.

``GET /v1/models`` lists the downloaded LLMs and embedding models; ``POST
/v1/chat/completions`` answers with the same deterministic reply as the websocket API
(:func:`default_reply`), as one ``chat.completion`` or, with ``"stream": true``, as server-sent
``chat.completion.chunk`` events (one per word) ending with ``data: [DONE]``. In firehose mode
(``Simulator(firehose=True)``) the reply is ``max_tokens`` (default
:data:`~._firehose.DEFAULT_FRAGMENTS`) chunks repeating the last user message, pre-encoded
once and written in large batches, so a benchmark measures the client and not this server.

Errors use OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from . import _firehose, _models

if TYPE_CHECKING:
    from ._state import ServerState

__all__ = ["add_routes"]

_ENCODER = msgspec.json.Encoder()
_DONE = b"data: [DONE]\n\n"
_SSE_BATCH = 512


def _error(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> web.Response:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }
    return web.Response(status=status, body=_ENCODER.encode(body), content_type="application/json")


def _sse(obj: Any) -> bytes:
    return b"data: " + _ENCODER.encode(obj) + b"\n\n"


class _OpenAIRoutes:
    def __init__(self, state: ServerState, firehose: bool) -> None:
        self.state = state
        self.firehose = firehose
        self._ids = itertools.count(1)

    async def models(self, request: web.Request) -> web.Response:
        data = [
            {"id": spec.model_key, "object": "model", "owned_by": "organization_owner"}
            for spec in self.state.catalog.values()
        ]
        return web.json_response({"object": "list", "data": data})

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = msgspec.json.decode(await request.read())
        except msgspec.DecodeError:
            return _error(400, "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")
        model = body.get("model")
        messages = body.get("messages")
        if not isinstance(model, str) or not model:
            return _error(400, "'model' is required and must be a string.", param="model")
        if not isinstance(messages, list) or not messages:
            return _error(400, "'messages' must be a non-empty array.", param="messages")
        # Names resolve as on the websocket endpoints (identifier, else key, path or repo).
        spec = self.state.find_spec(model)
        named = self.state.named(model)
        instance = named[0] if named else None
        if spec is None and instance is None:
            return _error(404, f"Model '{model}' not found.", param="model", code="model_not_found")
        model_id = instance.identifier if instance is not None else model
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        if self.firehose:
            count = _firehose.fragment_count(max_tokens)
            pieces: list[str] | None = None
            tag = " " + _firehose.fragment_tag(messages)
            finish = "length" if isinstance(max_tokens, int) else "stop"
        else:
            pieces = _models.split_words(_models.default_reply({"messages": messages}))
            finish = "stop"
            if isinstance(max_tokens, int) and len(pieces) > max_tokens:
                pieces, finish = pieces[:max_tokens], "length"
            count, tag = len(pieces), ""
        completion_id = f"chatcmpl-sim{next(self._ids)}"
        created = int(time.time())
        prompt_tokens = sum(
            len(_models.tokenize(_models._message_text(m))) for m in messages if isinstance(m, dict)
        )
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": count,
            "total_tokens": prompt_tokens + count,
        }
        if not body.get("stream"):
            content = "".join(pieces) if pieces is not None else tag * count
            return web.json_response(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model_id,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "logprobs": None,
                            "finish_reason": finish,
                        }
                    ],
                    "usage": usage,
                    "system_fingerprint": model_id,
                }
            )

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            return _sse(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model_id,
                    "system_fingerprint": model_id,
                    "choices": [
                        {
                            "index": 0,
                            "delta": delta,
                            "logprobs": None,
                            "finish_reason": finish_reason,
                        }
                    ],
                }
            )

        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        await response.write(chunk({"role": "assistant", "content": ""}))
        if pieces is not None:
            for piece in pieces:
                await response.write(chunk({"content": piece}))
        else:
            await _write_repeated(response.write, chunk({"content": tag}), count)
        await response.write(chunk({}, finish))
        await response.write(_DONE)
        await response.write_eof()
        return response


async def _write_repeated(write: Callable[[bytes], Any], event: bytes, count: int) -> None:
    batch = event * _SSE_BATCH
    while count > 0:
        n = min(_SSE_BATCH, count)
        await write(batch if n == _SSE_BATCH else event * n)
        count -= n


def add_routes(app: web.Application, state: ServerState, *, firehose: bool = False) -> None:
    """Serve ``/v1/models`` and ``/v1/chat/completions`` from ``state`` on ``app``."""
    routes = _OpenAIRoutes(state, firehose)
    app.router.add_get("/v1/models", routes.models)
    app.router.add_post("/v1/chat/completions", routes.chat_completions)

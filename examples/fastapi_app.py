"""Stream a model's reply to the browser as server-sent events (FastAPI + uvicorn).

    uv run python examples/fastapi_app.py --simulate --port 8000
    curl -N "http://127.0.0.1:8000/chat?prompt=Hello"

Each fragment is one ``data:`` event (a JSON string); a final ``event: done`` carries the stats.
When the browser goes away mid-reply, the prediction is cancelled in LM Studio: no GPU time is
spent on answers nobody reads. Without ``--simulate`` the app uses ``LMSTUDIO_BASE_URL`` (else
the local LM Studio). fastapi and uvicorn are only needed for this example, not by the SDK.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator

import uvicorn
from _common import connect, parser
from fastapi import FastAPI, Query
from fastapi.responses import StreamingResponse
from starlette.types import Send

import lmstudio_async as lms

log = logging.getLogger("fastapi_app")


class EventStream(StreamingResponse):
    """A streaming response that closes its generator as soon as streaming stops.

    On a client disconnect Starlette stops iterating the body but leaves the generator open until
    garbage collection; closing it here runs the generator's ``async with`` exit (which cancels
    the prediction) right away.
    """

    def __init__(self, body: AsyncGenerator[str, None]) -> None:
        super().__init__(body, media_type="text/event-stream")
        self._body = body

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            await self._body.aclose()


def create_app(*, simulate: bool, model_key: str) -> FastAPI:
    """The app; it holds one LMStudioClient for its whole life (opened in the lifespan)."""
    state: dict[str, lms.LMStudioClient] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with connect(simulate) as client:
            state["client"] = client
            yield

    app = FastAPI(lifespan=lifespan)

    async def events(model: lms.LLM, prompt: str) -> AsyncGenerator[str, None]:
        # `async with` ties the prediction to this generator: however the generator ends
        # (finished, cancelled by a disconnect, closed), an unfinished prediction is cancelled.
        async with model.respond(prompt) as prediction:
            async for fragment in prediction:
                yield f"data: {json.dumps(fragment.content)}\n\n"
            result = await prediction.result()
        stats = {
            "stop_reason": result.stats.stop_reason,
            "tokens": result.stats.predicted_tokens_count,
        }
        yield f"event: done\ndata: {json.dumps(stats)}\n\n"
        log.info("prediction finished: %s", stats["stop_reason"])

    @app.get("/chat")
    async def chat(prompt: str = Query(min_length=1)) -> EventStream:
        model = await state["client"].llm.model(model_key)
        return EventStream(events(model, prompt))

    return app


if __name__ == "__main__":
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--host", default="127.0.0.1", help="address to serve on")
    arguments.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    arguments.add_argument("--model", default="qwen2.5-7b-instruct", help="model key")
    args = arguments.parse_args()
    logging.basicConfig(level=logging.INFO)
    uvicorn.run(
        create_app(simulate=args.simulate, model_key=args.model), host=args.host, port=args.port
    )

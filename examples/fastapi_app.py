"""A chat page that streams a model's reply to the browser as server-sent events (FastAPI).

    uv run python examples/fastapi_app.py --simulate --port 8000
    # then open http://127.0.0.1:8000/ , or: curl -N "http://127.0.0.1:8000/chat?prompt=Hello"

``GET /`` is a minimal chat page (HTML + ``EventSource``); ``GET /chat?prompt=...`` streams
``prediction.server_sent_events()``: one ``data:`` event per fragment (a JSON string), then an
``event: done`` with the stats. When the browser goes away mid-reply (a closed tab, a new
question), the prediction is cancelled in LM Studio: no GPU time is spent on answers nobody
reads. Without ``--simulate`` the app uses ``LMSTUDIO_BASE_URL`` (else the local LM Studio).
fastapi and uvicorn are only needed for this example, not by the SDK.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator

import uvicorn
from _common import connect, parser
from fastapi import FastAPI, Query
from fastapi.responses import HTMLResponse, StreamingResponse
from starlette.types import Send

import lmstudio_async as lms

# The page closes its EventSource on `done` and `error`: left open, the browser would reconnect
# and ask the same question again.
CHAT_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>lmstudio_async chat</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; }
  #reply { white-space: pre-wrap; border: 1px solid #ccc; padding: 1rem; min-height: 4rem; }
  /* A thinking model's reasoning: shown as it streams, dimmed, so the page is never blank. */
  #reasoning { white-space: pre-wrap; color: #888; font-style: italic; margin: 0 0 .5rem; }
  #reasoning:empty { display: none; }
  #stats { color: #666; }
</style>
</head>
<body>
<h1>Chat with LM Studio</h1>
<form id="ask">
  <input id="prompt" autocomplete="off" required placeholder="Ask something" size="40">
  <button type="submit">Send</button>
</form>
<div id="reasoning" aria-label="reasoning"></div>
<div id="reply" aria-live="polite"></div>
<p id="stats"></p>
<script>
const reasoning = document.getElementById("reasoning");
const reply = document.getElementById("reply");
const stats = document.getElementById("stats");
let source = null;
document.getElementById("ask").addEventListener("submit", (event) => {
  event.preventDefault();
  if (source) source.close();  // a new question stops the previous answer
  reasoning.textContent = "";
  reply.textContent = "";
  stats.textContent = "";
  const prompt = document.getElementById("prompt").value;
  source = new EventSource("/chat?prompt=" + encodeURIComponent(prompt));
  source.onmessage = (e) => { reply.textContent += JSON.parse(e.data); };
  source.addEventListener("reasoning", (e) => { reasoning.textContent += JSON.parse(e.data); });
  source.addEventListener("done", (e) => {
    source.close();
    const s = JSON.parse(e.data);
    stats.textContent = `${s.predictedTokensCount} tokens, stop reason: ${s.stopReason}`;
  });
  source.addEventListener("error", (e) => {
    source.close();
    stats.textContent = e.data ? JSON.parse(e.data).message : "Lost the connection.";
  });
});
</script>
</body>
</html>
"""


class EventStream(StreamingResponse):
    """A streaming response that closes its generator as soon as streaming stops.

    Under uvicorn, Starlette cancels the body's iteration on a client disconnect, which already
    ends the generator. Under a server announcing ASGI 2.4 it only stops at the next failed write
    and leaves the generator suspended until garbage collection; closing it here runs its
    ``async with`` exit (which cancels the prediction) right away under any server.
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

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return CHAT_PAGE

    @app.get("/chat")
    async def chat(prompt: str = Query(min_length=1)) -> EventStream:
        model = await state["client"].llm.model(model_key)
        # The events run the prediction inside `async with`: however the stream ends
        # (finished, the browser left, the server shut down), an unfinished prediction is
        # cancelled in LM Studio.
        return EventStream(model.respond(prompt).server_sent_events())

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

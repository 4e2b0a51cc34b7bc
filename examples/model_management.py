"""Model management the way LM Studio's TypeScript docs show it, with lmstudio_async.

List what is downloaded and loaded, load a model with a chosen context length while watching
the progress, use it (tokens, prompt template, a reply, embeddings), then unload it.

Run against the built-in simulator (no LM Studio needed)::

    python examples/model_management.py --simulate

or against a running LM Studio (set ``LMSTUDIO_BASE_URL``, e.g. ``localhost:1234``, or let the
client find it)::

    python examples/model_management.py --llm qwen2.5-7b-instruct \\
        --embedding text-embedding-nomic-embed-text-v1.5
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator

from _common import run

import lmstudio_async as lms


@contextlib.asynccontextmanager
async def lmstudio(simulate: bool) -> AsyncIterator[lms.LMStudioClient]:
    """A client for the in-process simulator, or for LM Studio (``LMSTUDIO_BASE_URL``)."""
    if not simulate:
        async with lms.LMStudioClient(os.environ.get("LMSTUDIO_BASE_URL")) as client:
            yield client
        return
    from lmstudio_async.testing import Simulator

    # A short simulated load so the progress is visible but quick.
    async with Simulator(load_duration=0.2) as sim, lms.LMStudioClient(sim.base_url) as client:
        yield client


async def main(args: argparse.Namespace) -> None:
    async with lmstudio(args.simulate) as client:
        print(f"LM Studio {(await client.system.version()).version}")

        print("Downloaded models:")
        for info in await client.list_downloaded_models():
            kind = "llm" if isinstance(info, lms.LLMInfo) else "embedding"
            print(f"  {kind:<9} {info.model_key}  (max context {info.max_context_length})")

        print("Loaded models:")
        for handle in await client.list_loaded_models():
            kind = "llm" if isinstance(handle, lms.LLM) else "embedding"
            print(f"  {kind:<9} {handle.identifier}")

        # Load a fresh instance with a chosen context length, watching the progress.
        def show_progress(fraction: float) -> None:
            print(f"  loading {args.llm}: {fraction:.0%}")

        model = await client.llm.load(
            args.llm,
            identifier="example-llm",
            ttl=300,
            config=lms.LLMLoadConfig(context_length=args.context_length),
            on_progress=show_progress,
        )
        print(f"Loaded {model.identifier} with context {await model.get_context_length()}")
        print(f"Load config: {await model.get_load_config()}")

        question = "What is the capital of France?"
        print(f"Tokens in the question: {await model.count_tokens(question)}")
        prompt = await model.apply_prompt_template(question)
        print(f"Prompt as the model sees it: {prompt!r}")
        result = await model.respond(question, config={"max_tokens": 50})
        print(f"Reply: {result.content}")

        await model.unload()
        print(f"Unloaded {model.identifier}")

        # Embeddings: one vector per text, in order, a few requests at a time.
        embedder = await client.embedding.load(args.embedding, identifier="example-embedding")
        texts = [f"Document {n} about model management." for n in range(100)]

        def show_batch(done: int, total: int) -> None:
            if done % 25 == 0:
                print(f"  embedded {done}/{total}")

        vectors = await embedder.embed(texts, max_concurrency=8, progress=show_batch)
        print(f"Embedded {len(vectors)} texts into {len(vectors[0])}-dimensional vectors")
        await client.embedding.unload(embedder.identifier)
        print(f"Unloaded {embedder.identifier}")

        still_loaded = ", ".join(h.identifier for h in await client.list_loaded_models())
        print(f"Still loaded: {still_loaded or 'nothing'}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--simulate", action="store_true", help="run against an in-process LM Studio simulator"
    )
    parser.add_argument("--llm", default="qwen2.5-7b-instruct", help="LLM model key to load")
    parser.add_argument(
        "--embedding",
        default="text-embedding-nomic-embed-text-v1.5",
        help="embedding model key to load",
    )
    parser.add_argument("--context-length", type=int, default=8192)
    return parser.parse_args()


if __name__ == "__main__":
    run(main(parse_args()))

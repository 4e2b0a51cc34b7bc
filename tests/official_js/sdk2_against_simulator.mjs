// Drives the official @lmstudio/sdk 2.0.0 against the lmstudio_async simulator.
//
// Usage: node sdk2_against_simulator.mjs ws://127.0.0.1:PORT
// The Python test that runs it scripts the simulator first (act's tool call). Every step
// prints one JSON line {"step": ..., ...}; the last line is {"ok": true}. Any failure prints
// {"failed": step, "error": ...} and exits 1; a step that hangs (the official client waits
// forever on a reply it cannot validate) is reported as a timeout.
import { LMStudioClient, tool } from "@lmstudio/sdk";
import { z } from "zod";

const baseUrl = process.argv[2];
const STEP_TIMEOUT_MS = 20_000;
const PNG_BASE64 =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNgYGAAAAAEAAH2FzhVAAAAAElFTkSuQmCC";

function report(step, data) {
  console.log(JSON.stringify({ step, ...data }));
}

async function step(name, body) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS);
  });
  try {
    report(name, await Promise.race([body(), timeout]));
  } catch (error) {
    console.log(JSON.stringify({ failed: name, error: String(error?.stack ?? error) }));
    process.exit(1);
  } finally {
    clearTimeout(timer);
  }
}

const client = new LMStudioClient({ baseUrl, logger: { info() {}, warn() {}, error: console.error, debug() {} } });

await step("respondStreamedWithImage", async () => {
  const image = await client.files.prepareImageBase64("dot.png", PNG_BASE64);
  const model = await client.llm.model("google/gemma-3-4b");
  const prediction = model.respond([{ role: "user", content: "What is this?", images: [image] }]);
  let streamed = "";
  for await (const fragment of prediction) streamed += fragment.content;
  const result = await prediction.result();
  return { streamed, content: result.content, stopReason: result.stats.stopReason };
});

await step("respondAwaitedWithImage", async () => {
  const image = await client.files.prepareImageBase64("dot.png", PNG_BASE64);
  const model = await client.llm.model("google/gemma-3-4b");
  const result = await model.respond([{ role: "user", content: "And now?", images: [image] }]);
  return { content: result.content };
});

await step("complete", async () => {
  const model = await client.llm.model("google/gemma-3-4b");
  const result = await model.complete("Once upon a time");
  return { content: result.content };
});

await step("act", async () => {
  const model = await client.llm.model("qwen2.5-7b-instruct");
  const calls = [];
  const add = tool({
    name: "add",
    description: "Add two numbers.",
    parameters: { a: z.number(), b: z.number() },
    implementation: ({ a, b }) => {
      calls.push([a, b]);
      return a + b;
    },
  });
  const messages = [];
  await model.act("What is 1 + 3?", [add], { onMessage: (m) => messages.push(m.getRole()) });
  return { calls, roles: messages };
});

await step("embed", async () => {
  const model = await client.embedding.model("text-embedding-nomic-embed-text-v1.5");
  const { embedding } = await model.embed("hello");
  return { dimensions: embedding.length };
});

await step("listLoaded", async () => {
  const loaded = await client.llm.listLoaded();
  return { identifiers: loaded.map((m) => m.identifier).sort() };
});

await step("listDownloadedModels", async () => {
  const models = await client.system.listDownloadedModels();
  return { keys: models.map((m) => m.modelKey).sort() };
});

await step("estimateResourcesUsage", async () => {
  const estimate = await client.llm.estimateResourcesUsage("qwen2.5-7b-instruct", { contextLength: 8192 });
  return { totalBytes: estimate.memory.totalBytes, passesGuardrails: estimate.passesGuardrails };
});

await step("getInstanceProcessingState", async () => {
  const model = await client.llm.model("google/gemma-3-4b");
  return await model.getInstanceProcessingState();
});

await step("systemGetInfo", async () => {
  const info = await client.system.getInfo();
  return { isDaemon: info.isDaemon, version: info.version, hasPid: info.pid > 0 };
});

await step("download", async () => {
  const results = await client.repository.searchModels({ searchTerm: "qwen3" });
  const options = await results[0].getDownloadOptions();
  const progress = [];
  let finalizing = false;
  const modelKey = await options[0].download({
    onProgress: (update) => progress.push(update.downloadedBytes),
    onStartFinalizing: () => {
      finalizing = true;
    },
  });
  return { modelKey, progressReports: progress.length, finalizing };
});

await step("lmLinkStatus", async () => {
  const status = await client.repository.lmLink.status();
  return { status: status.status, device: status.deviceIdentifier, peers: status.peers.map((p) => p.deviceIdentifier) };
});

await step("logProbs", async () => {
  const model = await client.llm.model("google/gemma-3-4b");
  const tokens = [];
  await model.respond("Say hi", {
    logProbs: 2,
    onPredictionFragment: (fragment) => tokens.push(...(fragment.tokens ?? [])),
  });
  return { tokens: tokens.length, candidates: tokens[0]?.candidates?.length ?? 0 };
});

await step("runtime", async () => {
  const engines = await client.runtime.engine.list();
  const selections = await client.runtime.engine.getSelections();
  return { engines: engines.map((e) => e.name), selected: selections.get("GGUF")?.name ?? null };
});

await step("pluginsAnswer", async () => {
  try {
    await client.plugins.reindexPlugins();
    return { answered: "ok" };
  } catch (error) {
    return { answered: "error", message: String(error.message ?? error).split("\n")[0] };
  }
});

console.log(JSON.stringify({ ok: true }));
process.exit(0);

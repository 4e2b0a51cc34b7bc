"""The ``llm`` namespace: base-model endpoints plus prediction (PROTOCOL.md §3).

A prediction is planned first (a list of fragments, tool calls and a stop reason, all pure
data) and then streamed; faults, pacing and cancellation only affect the streaming loop.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import msgspec

from . import _envelope as env
from . import _failures as failures
from . import _firehose, _logprobs, _models, _structured, _vision
from ._basemodel import base_model_namespace, default_prediction_fields
from ._catalog import Instance
from ._connection import MISSING, ChannelContext, ChannelEndpoint, Connection, Namespace
from ._context import context_budget
from ._envelope import InvalidParameter, SimulatorError
from ._faults import Faults
from ._rules import choose_reply, last_message_facts
from ._scripting import (
    Fragment,
    PredictionRecord,
    PredictionRequest,
    ScriptedReply,
    ScriptedToolCall,
)

__all__ = ["llm_namespace"]

# One INFO line per finished prediction; `lmstudio-async simulate` shows them on stderr.
_predictions_log = logging.getLogger("lmstudio_async.testing.predictions")

_UNKNOWN_CHANNEL_ID = 987_654_321
_COMPLETE_MODE_LAYER = "completeModeFormatting"
_PROMPT_BATCH = 512  # tokens per prompt-processing step (llama.cpp's default n_batch)
_FRAGMENT_BATCH = 64  # unpaced fragments per socket write; a cancel is seen between batches


@dataclass(frozen=True)
class _PredictRequest:
    endpoint: str
    specifier: dict[str, Any]
    history: dict[str, Any] | None
    raw_prompt: str | None
    stack: dict[str, Any]
    preset: str | None


@dataclass(frozen=True)
class _Fragment:
    content: str
    reasoning_type: str = "none"
    structural: bool = False
    raw_content: bytes | None = None
    """The content's JSON string literal, verbatim, when it cannot be encoded normally."""

    @classmethod
    def scripted(cls, piece: str | Fragment) -> _Fragment:
        if isinstance(piece, str):
            piece = Fragment(piece)
        content, raw = piece.content, None
        if isinstance(content, bytes):
            raw = b'"' + content + b'"'
            content = content.decode("utf-8", "replace")
        elif not content.isascii():
            try:
                content.encode()
            except UnicodeEncodeError:  # lone surrogates: escaped the way JSON.stringify does
                raw = json.dumps(content).encode()
        return cls(content, piece.reasoning_type, piece.structural, raw)

    def packet(self) -> dict[str, Any] | msgspec.Raw:
        if self.raw_content is not None:
            flags = json.dumps(
                {
                    "tokensCount": 1,
                    "containsDrafted": False,
                    "reasoningType": self.reasoning_type,
                    "isStructural": self.structural,
                }
            ).encode()
            return msgspec.Raw(
                b'{"type":"fragment","fragment":{"content":'
                + self.raw_content
                + b","
                + flags[1:]
                + b"}"
            )
        return {
            "type": "fragment",
            "fragment": {
                "content": self.content,
                "tokensCount": 1,
                "containsDrafted": False,
                "reasoningType": self.reasoning_type,
                "isStructural": self.structural,
            },
        }


@dataclass
class _Plan:
    fragments: list[_Fragment]
    tool_calls: Sequence[ScriptedToolCall] = ()
    stop_reason: str = "eosFound"
    stop_string: str | None = None


def _validate_common(param: Any) -> dict[str, Any]:
    obj = env.require_object(param, "creationParameter")
    env.require_specifier(obj, "modelSpecifier")  # validated here, resolved when run
    env.require_config_stack(obj, "predictionConfigStack")
    env.optional_str(obj, "fuzzyPresetIdentifier")
    if "ignoreServerSessionConfig" in obj and not isinstance(
        obj["ignoreServerSessionConfig"], bool
    ):
        raise InvalidParameter("ignoreServerSessionConfig: expected boolean")
    return obj


def _validate_predict(param: Any) -> _PredictRequest:
    param = _validate_common(param)
    history = env.require_history(param, "history")
    return _PredictRequest(
        "predict",
        param["modelSpecifier"],
        history,
        None,
        param["predictionConfigStack"],
        param.get("fuzzyPresetIdentifier"),
    )


def _validate_complete(param: Any) -> _PredictRequest:
    param = _validate_common(param)
    raw = param.get("rawPrompt")
    if not isinstance(raw, str):
        raise InvalidParameter("rawPrompt: expected string")
    return _PredictRequest(
        "completeRawText",
        param["modelSpecifier"],
        None,
        raw,
        param["predictionConfigStack"],
        param.get("fuzzyPresetIdentifier"),
    )


def _history_text(history: dict[str, Any]) -> str:
    """What a ``completeModeFormatting`` template renders: the message texts concatenated."""
    return "".join(
        part.get("text", "")
        for message in history.get("messages", [])
        for part in message.get("content", [])
        if part.get("type") == "text"
    )


def _cut_at_stop_string(
    fragments: list[_Fragment], stop_strings: Sequence[str]
) -> tuple[list[_Fragment], str | None]:
    text = "".join(f.content for f in fragments)
    hits = [(text.find(s), s) for s in stop_strings if s and s in text]
    if not hits:
        return fragments, None
    cut, stop = min(hits)
    kept: list[_Fragment] = []
    position = 0
    for fragment in fragments:
        if position >= cut:
            break
        piece = fragment.content[: cut - position]
        if piece != fragment.content:
            fragment = _Fragment(piece, fragment.reasoning_type, fragment.structural)
        kept.append(fragment)
        position += len(fragment.content)
    return kept, stop


def _plan(
    instance: Instance,
    req: _PredictRequest,
    config: dict[str, Any],
    script: ScriptedReply | None,
    completion_prompt: str | None,
    files: Sequence[_vision.ReceivedFile] = (),
) -> _Plan:
    # Structured output binds chat predictions and completions alike (JSON schema or GBNF).
    constrained = _structured.constrained_content(config.get("llm.prediction.structured"))
    if script is not None:
        content = script.content
        reasoning = script.reasoning
        contents = list(script.fragments) if script.fragments is not None else None
    else:
        if constrained is not None:
            content = constrained
        elif completion_prompt is not None:
            content = _models.default_completion(completion_prompt)
        elif files:
            content = _vision.describe_images(list(files), req.history or {})
        else:
            content = _models.default_reply(req.history or {})
        reasoning = None
        # LM Studio hands enableThinking to the chat template; a thinking model told not to
        # think answers without a reasoning segment.
        thinking = config.get("llm.prediction.reasoning.enableThinking", True) is not False
        if instance.spec.reasoning and thinking and completion_prompt is None and not constrained:
            reasoning = _models.default_reasoning(req.history or {})
        contents = None
    body = (
        [_Fragment.scripted(c) for c in contents]
        if contents is not None
        else [_Fragment(c) for c in _models.split_words(content)]
    )
    plan = _Plan(body, tool_calls=script.tool_calls if script else ())
    if script is not None and script.stop_reason is not None:
        plan.stop_reason = script.stop_reason

    stop_strings = config.get("llm.prediction.stopStrings") or []
    plan.fragments, plan.stop_string = _cut_at_stop_string(body, stop_strings)
    if plan.stop_string is not None:
        plan.stop_reason = "stopStringFound"
        plan.tool_calls = ()

    if reasoning is not None:
        parsing = config.get("llm.prediction.reasoning.parsing") or {}
        start = parsing.get("startString") or "<think>"
        end = parsing.get("endString") or "</think>"
        # With parsing switched off, the model's tags and thoughts are ordinary content.
        parsed = parsing.get("enabled", True) is not False
        opening, inside, closing = (
            ("reasoningStartTag", "reasoning", "reasoningEndTag") if parsed else ("none",) * 3
        )
        plan.fragments = [
            _Fragment(start, opening, parsed),
            *(_Fragment(w, inside) for w in _models.split_words(reasoning)),
            _Fragment(end, closing, parsed),
            *plan.fragments,
        ]

    limit = config.get("llm.prediction.maxPredictedTokens")
    if (
        isinstance(limit, dict)
        and limit.get("checked")
        and isinstance(limit.get("value"), int)
        and len(plan.fragments) > limit["value"]
    ):
        plan.fragments = plan.fragments[: limit["value"]]
        plan.stop_reason = "maxPredictedTokensReached"
        plan.stop_string = None
        plan.tool_calls = ()
    return plan


class _Prediction:
    """Streams one planned prediction onto its channel."""

    def __init__(
        self,
        ctx: ChannelContext,
        instance: Instance,
        record: PredictionRecord,
        faults: Faults,
        config: dict[str, Any],
    ) -> None:
        self.ctx = ctx
        self.instance = instance
        self.record = record
        self.faults = faults
        self.config = config
        self.tokens = 0
        self.first_token_at: float | None = None
        self.candidates = _logprobs.requested_candidates(config)

    async def _fault_point(self, sent: int) -> bool:
        """Apply faults due after ``sent`` fragments; True if a stall ended in a cancel."""
        f, ctx = self.faults, self.ctx
        if f.malformed_json_after_fragments == sent:
            await ctx.conn.send_garbage('{"type": "channelSend", "channelId": ')
        if f.unknown_packet_after_fragments == sent:
            await ctx.send({"type": "simulatorUnknownPacket", "detail": "fault injection"})
        if f.unknown_channel_after_fragments == sent:
            packet = _Fragment("ghost ").packet()
            await ctx.conn.send(env.channel_send(_UNKNOWN_CHANNEL_ID, packet))
        if f.unknown_envelope_after_fragments == sent:
            await ctx.conn.send(env.encode({"type": "simulatorUnknownEnvelope"}))
        if f.channel_error_after_fragments == sent:
            raise SimulatorError(
                env.serialized_error(
                    "Simulated engine failure", cause="Fault injected by the simulator"
                )
            )
        if f.drop_after_fragments == sent:
            ctx.conn.close_now()
            await anyio.sleep_forever()
        if f.stall_after_fragments == sent:
            return await ctx.wait_cancel(None)
        return False

    async def send_prompt_progress(
        self,
        prompt_tokens: int,
        tokens_per_second: float | None = None,
        prompt_seconds: float = 0.0,
    ) -> bool:
        """Prompt processing from 0 to 1, one step per 512 tokens, with details, as LM Studio
        sends it; paced at ``tokens_per_second`` when given, and ``prompt_seconds`` (a scripted
        time to first token) spent before the last step. The record says ``prompt_processed``
        from then on. True if cancelled meanwhile."""
        counts = [*range(0, prompt_tokens, _PROMPT_BATCH), prompt_tokens]
        if len(counts) == 1:
            counts.append(prompt_tokens)  # an empty prompt still reports 0, then 1
        last = len(counts) - 1
        for n, processed in enumerate(counts):
            if n and tokens_per_second:
                step = processed - counts[n - 1]
                if await self.ctx.wait_cancel(step / tokens_per_second):
                    return True
            # Time to first token is prompt processing: the model reports processingPrompt.
            if n == last and prompt_seconds and await self.ctx.wait_cancel(prompt_seconds):
                return True
            progress = processed / prompt_tokens if prompt_tokens else float(n == last)
            await self.ctx.send(
                {
                    "type": "promptProcessingProgress",
                    "progress": 1 if n == last else progress,
                    "details": {
                        "cachedTokenCount": 0,
                        "totalPromptTokenCount": prompt_tokens,
                        "processedPromptTokenCount": processed,
                        "unprocessedPromptTokenCount": prompt_tokens - processed,
                    },
                }
            )
        self.record.prompt_processed = True
        return False

    async def stream(
        self,
        plan: _Plan,
        script: ScriptedReply | None,
        prompt_tokens: int,
        tokens_per_second: float | None = None,
    ) -> None:
        ctx, record = self.ctx, self.record
        started = time.monotonic()
        pace = script.prompt_tokens_per_second if script is not None else None
        ttft = script.time_to_first_token if script is not None else 0.0
        stopped = await self.send_prompt_progress(prompt_tokens, pace, ttft)
        delay = self.faults.delay_before_first_fragment
        tps = tokens_per_second
        if script is not None:
            tps = script.tokens_per_second or tokens_per_second
        stopped = stopped or (bool(delay) and await ctx.wait_cancel(delay))
        interval = 1.0 / tps if tps else 0.0
        if not stopped and (interval or _has_fragment_faults(self.faults)):
            stopped = await self._stream_one_by_one(plan.fragments, interval)
        elif not stopped:
            stopped = await self._stream_batched(plan.fragments)
        if not stopped:
            stopped = await self._fault_point(len(plan.fragments))
        if not stopped:
            stopped = await self._tool_calls(plan.tool_calls)
        if self.instance.unloaded:
            raise failures.model_unloaded()
        if stopped and self.faults.ignore_cancel:
            # The server saw the cancel and goes quiet: no userStopped, no channelClose.
            await anyio.sleep_forever()
        stop_reason = "userStopped" if stopped else plan.stop_reason
        await ctx.send(self._success(plan, stop_reason, started, prompt_tokens, tps))
        record.status = "cancelled" if stopped else "finished"

    async def _stream_one_by_one(self, fragments: Sequence[_Fragment], interval: float) -> bool:
        """Paced streaming, or with faults due at given counts; True if cancelled."""
        ctx, record = self.ctx, self.record
        for index, fragment in enumerate(fragments):
            if await self._fault_point(index) or ctx.cancel_requested.is_set():
                return True
            if index and interval and await ctx.wait_cancel(interval):
                return True
            await ctx.send(self._packet(fragment))
            await anyio.lowlevel.checkpoint()  # let a cancel arriving mid-stream be seen
            if self.first_token_at is None:
                self.first_token_at = time.monotonic()
            self.tokens += 1
            record.fragments_sent += 1
            record.add_content(fragment.content)
        return False

    def _packet(self, fragment: _Fragment) -> dict[str, Any] | msgspec.Raw:
        """The fragment's wire packet, with its log-probability tokens when they were asked for.

        A fragment carrying deliberately broken bytes (``msgspec.Raw``) is sent as it is.
        """
        packet = fragment.packet()
        if self.candidates is not None and isinstance(packet, dict):
            packet["fragment"]["tokens"] = _logprobs.token_entries(
                fragment.content, self.candidates
            )
        return packet

    async def _stream_batched(self, fragments: Sequence[_Fragment]) -> bool:
        """Unpaced, fault-free streaming, many frames per write; True if cancelled."""
        ctx, record = self.ctx, self.record
        channel_send, channel_id = env.channel_send, ctx.channel_id
        for start in range(0, len(fragments), _FRAGMENT_BATCH):
            if ctx.cancel_requested.is_set():
                return True
            batch = fragments[start : start + _FRAGMENT_BATCH]
            await ctx.conn.send_frames([channel_send(channel_id, self._packet(f)) for f in batch])
            if self.first_token_at is None:
                self.first_token_at = time.monotonic()
            self.tokens += len(batch)
            record.fragments_sent += len(batch)
            for fragment in batch:
                record.add_content(fragment.content)
            await anyio.lowlevel.checkpoint()  # let a cancel arriving mid-stream be seen
        return False

    async def _tool_calls(self, calls: Sequence[ScriptedToolCall]) -> bool:
        for call in calls:
            if self.ctx.cancel_requested.is_set():
                return True
            call_id = call.id or self.ctx.state.next_tool_call_id()
            body: dict[str, Any] = {"name": call.name}
            if call.arguments is not None:
                body["arguments"] = call.arguments
            raw_content = f"<tool_call>\n{json.dumps(body)}\n</tool_call>"
            await self.ctx.send({"type": "toolCallGenerationStart", "toolCallId": call_id})
            if call.fail:
                error = env.serialized_error(
                    "Failed to parse tool call", cause="Fault injected by the simulator"
                )
                packet = {"type": "toolCallGenerationFailed", "error": error}
                await self.ctx.send({**packet, "rawContent": raw_content})
                continue
            await self.ctx.send({"type": "toolCallGenerationNameReceived", "name": call.name})
            if call.argument_fragments is not None:
                pieces = list(call.argument_fragments)
            else:
                pieces = [] if call.arguments is None else [json.dumps(call.arguments)]
            for piece in pieces:
                await self.ctx.send(
                    {"type": "toolCallGenerationArgumentFragmentGenerated", "content": piece}
                )
            request = {"type": "function", "id": call_id, **body}
            await self.ctx.send(
                {
                    "type": "toolCallGenerationEnd",
                    "toolCallRequest": request,
                    "rawContent": raw_content,
                }
            )
        return False

    def _success(
        self,
        plan: _Plan,
        stop_reason: str,
        started: float,
        prompt_tokens: int,
        tps: float | None,
    ) -> dict[str, Any]:
        now = time.monotonic()
        stats: dict[str, Any] = {"stopReason": stop_reason}
        if stop_reason == "stopStringFound" and plan.stop_string is not None:
            stats["stopString"] = plan.stop_string
        if self.tokens and self.first_token_at is not None:
            generating = max(now - self.first_token_at, 1e-6)
            rate = tps if tps else self.tokens / generating
            if math.isfinite(rate):
                stats["tokensPerSecond"] = rate
        stats["numGpuLayers"] = -1
        if self.first_token_at is not None:
            stats["timeToFirstTokenSec"] = self.first_token_at - started
        stats["totalTimeSec"] = now - started
        stats["promptTokensCount"] = prompt_tokens
        stats["predictedTokensCount"] = self.tokens
        stats["totalTokensCount"] = prompt_tokens + self.tokens
        effective = {**default_prediction_fields(), **self.config}
        return {
            "type": "success",
            "stats": stats,
            "modelInfo": self.instance.info(),
            "loadModelConfig": self.instance.load_config(),
            "predictionConfig": {"fields": [{"key": k, "value": v} for k, v in effective.items()]},
        }


def _has_fragment_faults(faults: Faults) -> bool:
    """Whether any fault is due after some number of fragments (then stream one by one)."""
    return any(
        value is not None
        for value in (
            faults.malformed_json_after_fragments,
            faults.unknown_packet_after_fragments,
            faults.unknown_channel_after_fragments,
            faults.unknown_envelope_after_fragments,
            faults.channel_error_after_fragments,
            faults.drop_after_fragments,
            faults.stall_after_fragments,
        )
    )


def _preset_not_found(name: str) -> SimulatorError:
    return SimulatorError(
        env.serialized_error(
            f'Cannot find a preset matching "{name}"',
            display_data={
                "code": "generic.presetNotFound",
                "specifiedFuzzyPresetIdentifier": name,
                "availablePresetsSample": [],
                "totalAvailablePresets": 0,
            },
        )
    )


def _requested_identifier(specifier: dict[str, Any]) -> str:
    if specifier["type"] == "instanceReference":
        return str(specifier["instanceReference"])
    return str(specifier["query"].get("identifier", ""))


def _request_for_rules(
    req: _PredictRequest, instance: Instance, config: dict[str, Any], prompt: str | None
) -> PredictionRequest:
    user, role = last_message_facts(req.history, prompt)
    tools = (config.get("llm.prediction.tools") or {}).get("tools") or []
    return PredictionRequest(
        endpoint=req.endpoint,
        model=instance.identifier,
        model_key=instance.spec.model_key,
        history=req.history,
        raw_prompt=prompt,
        config=config,
        tools=tools,
        last_user_message=user,
        last_message_role=role,
    )


def _limit_to_context(plan: _Plan, max_generated: int | None) -> None:
    if max_generated is not None and len(plan.fragments) > max_generated:
        plan.fragments = plan.fragments[:max_generated]
        plan.stop_reason = "contextLengthReached"
        plan.stop_string = None
        plan.tool_calls = ()


async def _run_prediction(
    ctx: ChannelContext, req: _PredictRequest, *, firehose: bool = False
) -> None:
    state = ctx.state
    layer_names = {layer["layerName"] for layer in req.stack["layers"]}
    completion_prompt = req.raw_prompt
    if completion_prompt is None and _COMPLETE_MODE_LAYER in layer_names and req.history:
        # Older clients (lmstudio-python 1.5) complete via predict + a template layer.
        completion_prompt = _history_text(req.history)
    record = PredictionRecord(
        connection_id=ctx.conn.id,
        channel_id=ctx.channel_id,
        endpoint=req.endpoint,
        model_identifier=_requested_identifier(req.specifier),
        history=req.history,
        raw_prompt=completion_prompt,
        config_stack=req.stack,
    )
    state.predictions.append(record)

    def on_cancel() -> None:
        record.cancel_received = True

    ctx.on_cancel = on_cancel
    instance: Instance | None = None
    forget_unload: Callable[[], None] | None = None
    try:
        instance = state.resolve("llm", req.specifier)
        record.model_identifier = instance.identifier
        state.prediction_started(record)
        instance.touch()
        # Unloading the model (unloadModel, a JIT eviction) wakes the stream, which then
        # ends with LM Studio's "Model is unloaded." error.
        forget_unload = instance.when_unloaded(ctx.cancel_requested.set)
        if req.preset is not None:
            raise _preset_not_found(req.preset)
        config = env.flatten_stack(req.stack)
        uploads = state.files.get(ctx.conn.client_identifier, {})
        files = _vision.received_files(uploads, instance, req.history or {})
        # Rules first: they are aimed at this very request, the queue only at the model.
        script = await choose_reply(
            state.rules, _request_for_rules(req, instance, config, completion_prompt)
        )
        if script is None:
            script = state.script_for(instance)
        if script is not None and script.error is not None:
            raise SimulatorError(script.error)
        faults = script.faults if script is not None and script.faults else state.faults
        plan = _plan(instance, req, config, script, completion_prompt, files)
        if script is not None and script.prompt_tokens is not None:
            prompt_tokens = script.prompt_tokens
        elif completion_prompt is not None:
            prompt_tokens = len(_models.tokenize(completion_prompt))
        else:
            tools = (config.get("llm.prediction.tools") or {}).get("tools")
            formatted = _models.apply_prompt_template(req.history or {}, tools)
            prompt_tokens = len(_models.tokenize(formatted))
        if state.enforce_context_length:
            budget = context_budget(
                prompt_tokens=prompt_tokens,
                context_length=instance.context_length,
                policy=config.get("llm.prediction.contextOverflowPolicy"),
                history=req.history,
            )
            prompt_tokens = budget.prompt_tokens
            _limit_to_context(plan, budget.max_generated)
        prediction = _Prediction(ctx, instance, record, faults, config)
        if firehose and script is None and faults == Faults():
            await _firehose.stream(prediction, req.history, prompt_tokens)
        else:
            await prediction.stream(plan, script, prompt_tokens, state.tokens_per_second)
    except anyio.get_cancelled_exc_class():
        record.status = "disconnected"
        raise
    except BaseException:
        record.status = "errored"
        raise
    finally:
        if forget_unload is not None:
            forget_unload()
        if instance is not None:
            state.prediction_ended(record)
            # TTL is idle time: it counts from the end of the prediction, not its start.
            instance.touch()
        _predictions_log.info(
            "prediction connection=%d channel=%d model=%s endpoint=%s outcome=%s "
            "cancel_received=%s fragments_sent=%d",
            record.connection_id,
            record.channel_id,
            record.model_identifier,
            record.endpoint,
            record.status,
            "yes" if record.cancel_received else "no",
            record.fragments_sent,
        )


async def _apply_prompt_template(conn: Connection, param: Any) -> Any:
    param = env.require_object(param, "parameter")
    specifier = env.require_specifier(param, "specifier")
    history = env.require_history(param, "history")
    env.require_config_stack(param, "predictionConfigStack")
    opts = env.require_object(param.get("opts", {}), "opts")
    conn.state.resolve("llm", specifier)
    return {"formatted": _models.apply_prompt_template(history, opts.get("toolDefinitions"))}


async def _preload_draft_model(conn: Connection, param: Any) -> Any:
    param = env.require_object(param, "parameter")
    conn.state.resolve("llm", env.require_specifier(param, "specifier"))
    conn.state.spec_for_load(env.require_str(param, "draftModelKey"), "llm")
    return MISSING


def llm_namespace(*, firehose: bool = False) -> Namespace:
    """All ``/llm`` endpoints (``firehose``: see :mod:`._firehose`)."""
    ns = base_model_namespace("llm")
    ns.rpcs["applyPromptTemplate"] = _apply_prompt_template
    ns.rpcs["preloadDraftModel"] = _preload_draft_model
    run = functools.partial(_run_prediction, firehose=firehose)
    ns.channels["predict"] = ChannelEndpoint(_validate_predict, run)
    ns.channels["completeRawText"] = ChannelEndpoint(_validate_complete, run)
    return ns

"""Endpoints ``llm`` and ``embedding`` share (PROTOCOL.md §3.1): list, info, load, unload,
tokenization. Each builder takes the domain so one implementation serves both namespaces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import _envelope as env
from . import _failures as failures
from . import _models
from ._catalog import Instance, ModelSpec, ModelType, spec_rank
from ._connection import MISSING, ChannelContext, ChannelEndpoint, Connection, Namespace
from ._devices import placement, requested_device
from ._envelope import InvalidParameter, SimulatorError
from ._resources import estimate_model_usage
from ._state import ServerState

__all__ = ["base_model_namespace", "default_prediction_fields"]

_LOAD_STEPS = 4


def default_prediction_fields() -> dict[str, Any]:
    """The app's model-default prediction settings (schema defaults from PROTOCOL.md §3.3)."""
    return {
        "llm.prediction.temperature": 0.8,
        "llm.prediction.maxPredictedTokens": {"checked": False, "value": 1000},
        "llm.prediction.topPSampling": {"checked": True, "value": 0.95},
        "llm.prediction.topKSampling": 40,
        "llm.prediction.minPSampling": {"checked": True, "value": 0.05},
        "llm.prediction.repeatPenalty": {"checked": True, "value": 1.1},
        "llm.prediction.stopStrings": [],
        "llm.prediction.toolCallStopStrings": [],
        "llm.prediction.contextOverflowPolicy": "truncateMiddle",
        "llm.prediction.structured": {"type": "none"},
        "llm.prediction.tools": {"type": "none"},
        "llm.prediction.reasoning.parsing": {
            "enabled": True,
            "startString": "<think>",
            "endString": "</think>",
        },
        "llm.prediction.llama.cpuThreads": 4,
    }


def _void(param: Any) -> None:
    if param is not MISSING:
        raise InvalidParameter("expected no parameter")


@dataclass(frozen=True)
class _LoadRequest:
    key: str
    identifier: str | None
    ttl_ms: int | None
    load_fields: list[dict[str, Any]]
    device_identifier: str | None = None


def _load_fields(param: dict[str, Any]) -> list[dict[str, Any]]:
    stack = env.require_config_stack(param, "loadConfigStack")
    return [{"key": k, "value": v} for k, v in env.flatten_stack(stack).items()]


class _BaseModelEndpoints:
    def __init__(self, domain: ModelType) -> None:
        self.domain = domain
        self.ctx_key = f"{domain}.load.contextLength"

    # ---- RPCs ----------------------------------------------------------------------------

    async def list_loaded(self, conn: Connection, param: Any) -> Any:
        _void(param)
        return [i.info() for i in conn.state.loaded(self.domain)]

    async def get_model_info(self, conn: Connection, param: Any) -> Any:
        param = env.require_object(param, "parameter")
        specifier = env.require_specifier(param, "specifier")
        throw = env.require_bool(param, "throwIfNotFound")
        try:
            return conn.state.resolve(self.domain, specifier).info()
        except SimulatorError:
            if throw:
                raise
            return MISSING

    def _resolve_rpc(self, conn: Connection, param: Any) -> tuple[dict[str, Any], Instance]:
        param = env.require_object(param, "parameter")
        specifier = env.require_specifier(param, "specifier")
        return param, conn.state.resolve(self.domain, specifier)

    async def get_load_config(self, conn: Connection, param: Any) -> Any:
        return self._resolve_rpc(conn, param)[1].load_config()

    async def get_base_prediction_config(self, conn: Connection, param: Any) -> Any:
        self._resolve_rpc(conn, param)
        fields = default_prediction_fields() if self.domain == "llm" else {}
        return {"fields": [{"key": k, "value": v} for k, v in fields.items()]}

    async def get_processing_state(self, conn: Connection, param: Any) -> Any:
        param = env.require_object(param, "parameter")
        specifier = env.require_specifier(param, "specifier")
        throw = env.require_bool(param, "throwIfNotFound")
        try:
            instance = conn.state.resolve(self.domain, specifier)
        except SimulatorError:
            if throw:
                raise
            return MISSING
        # `queued` counts the running request too, as LM Studio reports it; the status is that
        # of the oldest request, the one the model works on.
        running = conn.state.running_on(instance.identifier)
        embeddings = conn.state.embeddings_running.get(instance.identifier, 0)
        if running:
            status = "generating" if running[0].prompt_processed else "processingPrompt"
        else:
            status = "computingEmbedding" if embeddings else "idle"
        return {"status": status, "queued": len(running) + embeddings}

    async def unload_model(self, conn: Connection, param: Any) -> Any:
        param = env.require_object(param, "parameter")
        identifier = env.require_str(param, "identifier")
        device = requested_device(param)
        # A namespace unloads only its own instances: another domain's is simply not found.
        # Without a device LM Studio tries the preferred device, this machine, then the peers;
        # identifiers are unique across the simulated devices, so the one match is the first.
        conn.state.unload(conn.state.unload_target(self.domain, identifier, device))
        return MISSING

    async def tokenize(self, conn: Connection, param: Any) -> Any:
        param, instance = self._resolve_rpc(conn, param)
        text = param.get("inputString")
        if not isinstance(text, str):
            raise InvalidParameter("inputString: expected string")
        instance.touch()
        tokens = _models.tokenize(text)
        if self.domain == "embedding":
            # Embedding models (BERT-style) wrap the text in start and end markers when they
            # tokenize it, which countTokens does not count.
            tokens = [_models.EMBEDDING_START_TOKEN, *tokens, _models.EMBEDDING_END_TOKEN]
        return {"tokens": tokens}

    async def count_tokens(self, conn: Connection, param: Any) -> Any:
        param, instance = self._resolve_rpc(conn, param)
        text = param.get("inputString")
        if not isinstance(text, str):
            raise InvalidParameter("inputString: expected string")
        instance.touch()
        return {"tokenCount": len(_models.tokenize(text))}

    # ---- loading channels ----------------------------------------------------------------

    def validate_load(self, param: Any) -> _LoadRequest:
        param = env.require_object(param, "creationParameter")
        key = env.require_str(param, "modelKey")
        identifier = env.optional_str(param, "identifier")
        device = requested_device(param)
        ttl = env.optional_positive_int(param, "ttlMs")
        return _LoadRequest(key, identifier, ttl, _load_fields(param), device)

    def validate_get_or_load(self, param: Any) -> _LoadRequest:
        param = env.require_object(param, "creationParameter")
        identifier = env.require_str(param, "identifier")
        device = requested_device(param)
        ttl = env.optional_positive_int(param, "loadTtlMs")
        return _LoadRequest(identifier, None, ttl, _load_fields(param), device)

    async def _simulate_load(
        self,
        ctx: ChannelContext,
        spec: ModelSpec,
        identifier: str,
        request: _LoadRequest,
        progress_type: str,
        device: str | None,
        *,
        jit: bool = False,
    ) -> Instance:
        step = ctx.state.load_duration / _LOAD_STEPS
        fail_at = ctx.state.faults.load_failure_at_progress
        if fail_at == 0:
            raise SimulatorError(ctx.state.faults.load_error or _load_failed(spec))
        for n in range(1, _LOAD_STEPS + 1):
            if await ctx.wait_cancel(step):
                raise SimulatorError(
                    env.serialized_error(f'Loading of model "{spec.model_key}" was cancelled')
                )
            progress = n / _LOAD_STEPS
            if fail_at is not None and progress >= fail_at:
                # Report exactly the fraction asked for (0.33 is not rounded to a quarter),
                # then fail: 1.0 fails after full progress instead of loading.
                await ctx.send({"type": progress_type, "progress": fail_at})
                raise SimulatorError(ctx.state.faults.load_error or _load_failed(spec))
            await ctx.send({"type": progress_type, "progress": progress})
        fields = {e["key"]: e["value"] for e in request.load_fields}
        context = fields.get(self.ctx_key)
        context_length = (
            min(int(context), spec.max_context_length)
            if isinstance(context, int) and context > 0
            else None
        )
        return ctx.state.add_instance(
            spec,
            identifier,
            ttl_ms=request.ttl_ms,
            context_length=context_length,
            load_fields=request.load_fields,
            device_identifier=device,
            jit=jit,
        )

    async def run_load(self, ctx: ChannelContext, request: _LoadRequest) -> None:
        state = ctx.state
        spec = state.spec_for_load(request.key, self.domain)
        device = placement(state, request.device_identifier)
        if request.identifier is not None and state.identifier_in_use(request.identifier):
            raise failures.identifier_taken(request.identifier)
        identifier = request.identifier or state.default_identifier(spec)
        # The identifier is taken from now on, so a concurrent load gets key:2 (or, asking
        # for the same identifier, the app's "already exists").
        pending = state.reserve(spec, identifier, device)
        try:
            resolved: dict[str, Any] = {"type": "resolved", "info": spec.info()}
            # Only equally good matches make a name ambiguous: an exact key is not.
            rank = spec_rank(spec, request.key)
            others = [
                s.model_key
                for s in state.find_specs(request.key)
                if s is not spec and spec_rank(s, request.key) == rank
            ]
            if others:
                resolved["ambiguous"] = others
            await ctx.send(resolved)
            instance = await self._simulate_load(ctx, spec, identifier, request, "progress", device)
        finally:
            state.release(pending)
        await ctx.send({"type": "success", "info": instance.info()})

    def _already_loaded(
        self, state: ServerState, request: _LoadRequest, device: str | None
    ) -> Instance | None:
        """The loaded instance a ``getOrLoad`` answers with: the one with that identifier,
        else one of the downloaded model the name designates best (as ``loadModel`` picks
        it), on the requested device when one is named; None if it must be loaded."""
        anywhere = request.device_identifier is None
        exact = state.by_identifier(request.key)
        if exact is not None and (anywhere or exact.device_identifier == device):
            if exact.spec.type != self.domain:
                raise failures.domain_mismatch(
                    exact.spec.model_key, exact.spec.wire_path, exact.spec.type, self.domain
                )
            return exact
        spec = state.find_spec(request.key)
        if spec is None:
            return None
        return next(
            (
                i
                for i in state.loaded()
                if i.spec.model_key == spec.model_key
                and (anywhere or i.device_identifier == device)
            ),
            None,
        )

    async def _wait_for_loaded(
        self, ctx: ChannelContext, request: _LoadRequest, device: str | None
    ) -> bool:
        """Answer ``alreadyLoaded`` if the model is loaded, first waiting for a load of it
        that is under way (as LM Studio answers every caller with that one load). True if
        answered; False if the caller must load it (no such load, or it failed)."""
        state = ctx.state
        anywhere = request.device_identifier is None
        while True:
            existing = self._already_loaded(state, request, device)
            if existing is not None:
                await ctx.send({"type": "alreadyLoaded", "info": existing.info()})
                return True
            pending = state.pending_load(request.key, device, any_device=anywhere)
            if pending is None:
                return False
            await pending.done.wait()
            if ctx.cancel_requested.is_set():  # the caller gave up while it waited
                raise SimulatorError(
                    env.serialized_error(f'Loading of model "{request.key}" was cancelled')
                )

    async def run_get_or_load(self, ctx: ChannelContext, request: _LoadRequest) -> None:
        state = ctx.state
        device = placement(state, request.device_identifier)
        if await self._wait_for_loaded(ctx, request, device):
            return
        spec = state.spec_for_load(request.key, self.domain)
        # JIT loads take turns: each evicts the one before it once that one is loaded, and a
        # caller that waited here for a load of the same model gets it as alreadyLoaded.
        async with state.jit_lock:
            if await self._wait_for_loaded(ctx, request, device):
                return
            # JIT auto-evict (the app's default): a just-in-time load first unloads the
            # models earlier JIT loads brought in, whatever their domain, and says so.
            for other in state.jit_instances():
                state.unload(other)
                await ctx.send({"type": "unloadingOtherJITModel", "info": other.info()})
            identifier = state.default_identifier(spec)
            pending = state.reserve(spec, identifier, device)
            try:
                await ctx.send(
                    {"type": "startLoading", "identifier": identifier, "info": spec.info()}
                )
                instance = await self._simulate_load(
                    ctx, spec, identifier, request, "loadProgress", device, jit=True
                )
            finally:
                state.release(pending)
        await ctx.send({"type": "loadSuccess", "info": instance.info()})


def _load_failed(spec: ModelSpec) -> dict[str, Any]:
    return env.serialized_error(
        f'Failed to load model "{spec.model_key}"',
        cause="Error loading model. (Exit code: 1). Fault injected by the simulator",
        suggestion="Try a smaller context length or offload fewer layers to the GPU.",
    )


def base_model_namespace(domain: ModelType) -> Namespace:
    """A namespace pre-filled with the shared base-model endpoints for ``domain``."""
    e = _BaseModelEndpoints(domain)
    return Namespace(
        rpcs={
            "listLoaded": e.list_loaded,
            "getModelInfo": e.get_model_info,
            "getLoadConfig": e.get_load_config,
            "getBasePredictionConfig": e.get_base_prediction_config,
            "getInstanceProcessingState": e.get_processing_state,
            "unloadModel": e.unload_model,
            "tokenize": e.tokenize,
            "countTokens": e.count_tokens,
            "estimateModelUsage": estimate_model_usage(domain),
        },
        channels={
            "loadModel": ChannelEndpoint(e.validate_load, e.run_load),
            "getOrLoad": ChannelEndpoint(e.validate_get_or_load, e.run_get_or_load),
        },
    )

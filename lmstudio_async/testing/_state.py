"""Server-wide state shared by every connection: models, scripts, faults, records.

Plain bookkeeping without I/O. Model resolution raises the errors of :mod:`._failures`,
which carry the ``displayData`` codes LM Studio uses (PROTOCOL.md §5.8).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import anyio

from . import _failures as failures
from ._catalog import Instance, ModelSpec, ModelType, spec_rank
from ._envelope import SimulatorError
from ._faults import EndpointFault, Faults
from ._hub import Hub
from ._rules import Rule
from ._scripting import PredictionRecord, ScriptedReply

__all__ = ["PendingLoad", "ServerState"]


@dataclasses.dataclass(eq=False)
class PendingLoad:
    """A load under way: its identifier is taken from the moment it starts, as in LM Studio,
    so a concurrent load picks ``key:2`` and a ``getOrLoad`` of the same model waits for it."""

    spec: ModelSpec
    identifier: str
    device_identifier: str | None
    done: anyio.Event = dataclasses.field(default_factory=anyio.Event)


class ServerState:
    """Everything the simulated app knows, independent of any socket."""

    def __init__(
        self,
        *,
        catalog: Sequence[ModelSpec],
        loaded: Iterable[str],
        load_duration: float,
        version: str,
        build: int,
        embed_duration: float = 0.0,
    ) -> None:
        self.catalog: dict[str, ModelSpec] = {spec.model_key: spec for spec in catalog}
        # Downloaded variants by variant key; the catalog lists their model once, by base key.
        self.variants: dict[str, ModelSpec] = {}
        self.instances: list[Instance] = []
        self.scripts: dict[str, deque[ScriptedReply]] = {}
        self.faults = Faults()
        self.predictions: list[PredictionRecord] = []
        # Predictions under way, by the identifier of the instance they run on, oldest first
        # (keyed by id(): records are unhashable dataclasses). Every model lookup asks which
        # instances are busy: walking the whole history instead made each prediction cost
        # more than the one before, so a long-running simulator slowed to a crawl.
        self._running: dict[str, dict[int, PredictionRecord]] = {}
        # Testing-kit controls (see Simulator): rules, endpoint faults, pacing, context.
        self.rules: list[Rule] = []
        self.endpoint_faults: list[EndpointFault] = []
        self.tokens_per_second: float | None = None
        self.enforce_context_length = True
        self.load_duration = load_duration
        self.embed_duration = embed_duration
        # Loaded embedding model identifier -> embedString requests it is computing.
        self.embeddings_running: dict[str, int] = {}
        self.version = version
        self.build = build
        self.files: dict[str, dict[str, dict[str, Any]]] = {}
        # LM Studio never reuses an uploaded file's identifier, even after it deleted the
        # client's files on disconnect: a stale handle must stay unknown.
        self.file_serial = itertools.count(1)
        self.hub = Hub()
        self._references = itertools.count(1)
        self._tool_call_ids = itertools.count(1)
        self.pending_loads: list[PendingLoad] = []
        self._jit_lock: anyio.Lock | None = None
        for key in loaded:
            spec = self.find_spec(key)
            if spec is None:
                raise ValueError(f"cannot preload {key!r}: not in the catalog")
            self.add_instance(spec, self.default_identifier(spec))

    # ---- catalog and instances -----------------------------------------------------------

    def find_specs(self, name: str) -> list[ModelSpec]:
        """Downloaded models ``name`` designates, best match first (see :func:`spec_rank`)."""
        ranked = sorted(
            (
                (rank, n, spec)
                for n, spec in enumerate(self.catalog.values())
                if (rank := spec_rank(spec, name)) is not None
            ),
            key=lambda item: item[:2],
        )
        return [spec for _, _, spec in ranked]

    def find_spec(self, name: str) -> ModelSpec | None:
        """The downloaded model ``name`` designates best, if any: a model of the catalog, else
        a downloaded variant (by variant key, path or indexed identifier)."""
        found = self.find_specs(name)
        if found:
            return found[0]
        exact = self.variants.get(name)
        if exact is not None:
            return exact
        return next((v for v in self.variants.values() if spec_rank(v, name) is not None), None)

    def spec_for_load(self, name: str, domain: ModelType) -> ModelSpec:
        """The downloaded model a load of ``name`` on ``domain``'s namespace loads, or an error."""
        spec = self.find_spec(name)
        if spec is None:
            raise failures.path_not_found(name, list(self.catalog))
        if spec.type != domain:
            raise failures.domain_mismatch(spec.model_key, spec.wire_path, spec.type, domain)
        return spec

    def unload_idle(self) -> None:
        """Unload the instances idle for longer than their TTL, as LM Studio does.

        Checked whenever instances are looked at rather than by a timer: nobody can tell the
        difference, and the state stays free of tasks. An instance that is generating is busy.
        """
        now = time.monotonic()
        for instance in list(self.instances):
            if instance.identifier not in self._running and instance.idle_expired(now):
                self.unload(instance)

    def prediction_started(self, record: PredictionRecord) -> None:
        """``record`` runs on the instance ``record.model_identifier`` until
        :meth:`prediction_ended`: that instance is busy (never unloaded for idling)."""
        self._running.setdefault(record.model_identifier, {})[id(record)] = record

    def prediction_ended(self, record: PredictionRecord) -> None:
        running = self._running.get(record.model_identifier)
        if running is not None and running.pop(id(record), None) is not None and not running:
            del self._running[record.model_identifier]

    def running_on(self, identifier: str) -> list[PredictionRecord]:
        """The predictions running on the instance ``identifier``, oldest first."""
        return list(self._running.get(identifier, {}).values())

    def add_variant(self, base_key: str, variant: ModelSpec) -> None:
        """Record a downloaded variant (``variant.model_key`` is its variant key) and list
        ``base_key`` with all its variants. The first variant stays selected, as in LM Studio,
        where a further download does not change which one a load of the key uses."""
        self.variants[variant.model_key] = variant
        current = self.catalog.get(base_key)
        keys = [*(current.variants if current is not None else ()), variant.model_key]
        keys = list(dict.fromkeys(keys))
        selected = current.selected_variant if current is not None else None
        if selected not in self.variants:
            selected = variant.model_key
        chosen = self.variants[selected]
        self.catalog[base_key] = dataclasses.replace(
            chosen, model_key=base_key, variants=tuple(keys), selected_variant=selected
        )

    def loaded(self, domain: ModelType | None = None) -> list[Instance]:
        self.unload_idle()
        return [i for i in self.instances if domain is None or i.spec.type == domain]

    def by_identifier(self, identifier: str) -> Instance | None:
        """The instance whose identifier is ``identifier`` (compared case-insensitively)."""
        self.unload_idle()
        wanted = identifier.casefold()
        return next((i for i in self.instances if i.identifier.casefold() == wanted), None)

    def named(self, name: str) -> list[Instance]:
        """Loaded instances ``name`` designates: the one with that identifier, else the
        instances of the downloaded models it names best (lowest :func:`spec_rank`), in load
        order. A name matching no whole key, path or repository designates nothing."""
        exact = self.by_identifier(name)  # unloads idle instances first
        if exact is not None:
            return [exact]
        ranked = [(r, i) for i in self.instances if (r := spec_rank(i.spec, name)) is not None]
        best = min((r for r, _ in ranked), default=None)
        return [i for r, i in ranked if r == best]

    def identifier_in_use(self, identifier: str) -> bool:
        """Whether a loaded instance or a load under way has ``identifier`` (any case)."""
        wanted = identifier.casefold()
        return self.by_identifier(identifier) is not None or any(
            p.identifier.casefold() == wanted for p in self.pending_loads
        )

    def default_identifier(self, spec: ModelSpec) -> str:
        """The key itself, then ``key:2``, ``key:3``... like LM Studio on collision (with
        loaded instances and loads under way alike)."""
        if not self.identifier_in_use(spec.model_key):
            return spec.model_key
        for n in itertools.count(2):
            candidate = f"{spec.model_key}:{n}"
            if not self.identifier_in_use(candidate):
                return candidate
        raise AssertionError("unreachable")

    def reserve(self, spec: ModelSpec, identifier: str, device: str | None) -> PendingLoad:
        """Take ``identifier`` for a load that starts now; :meth:`release` it when it ends."""
        pending = PendingLoad(spec, identifier, device)
        self.pending_loads.append(pending)
        return pending

    def release(self, pending: PendingLoad) -> None:
        """The load ended (loaded, failed or cancelled): wake whoever waits for it."""
        self.pending_loads.remove(pending)
        pending.done.set()

    def pending_load(
        self, name: str, device: str | None, *, any_device: bool
    ) -> PendingLoad | None:
        """A load under way of what ``name`` designates (its identifier, else the downloaded
        model it names best), on ``device`` unless ``any_device``."""
        on_device = [p for p in self.pending_loads if any_device or p.device_identifier == device]
        wanted = name.casefold()
        exact = next((p for p in on_device if p.identifier.casefold() == wanted), None)
        if exact is not None:
            return exact
        spec = self.find_spec(name)
        if spec is None:
            return None
        return next((p for p in on_device if p.spec.model_key == spec.model_key), None)

    @property
    def jit_lock(self) -> anyio.Lock:
        """Held by a just-in-time load from eviction to load: JIT loads take turns, so each
        evicts the one before it (created on first use, inside the event loop)."""
        if self._jit_lock is None:
            self._jit_lock = anyio.Lock()
        return self._jit_lock

    def unload(self, instance: Instance) -> None:
        """Unload ``instance``. A prediction running on it ends with an error (see
        :meth:`Instance.mark_unloaded`), as LM Studio's does when its model goes."""
        self.instances.remove(instance)
        instance.mark_unloaded()

    def add_instance(
        self,
        spec: ModelSpec,
        identifier: str,
        *,
        ttl_ms: int | None = None,
        context_length: int | None = None,
        load_fields: list[dict[str, Any]] | None = None,
        device_identifier: str | None = None,
        jit: bool = False,
    ) -> Instance:
        instance = Instance(
            spec=spec,
            identifier=identifier,
            instance_reference=f"sim-inst-{next(self._references)}",
            context_length=context_length or spec.default_context_length,
            ttl_ms=ttl_ms,
            load_fields=list(load_fields or []),
            device_identifier=device_identifier,
            jit=jit,
        )
        self.instances.append(instance)
        return instance

    def jit_instances(self) -> list[Instance]:
        """Instances loaded just in time (by ``getOrLoad``), which the next JIT load evicts."""
        return [i for i in self.loaded() if i.jit]

    def unload_target(self, domain: ModelType, identifier: str, device: str | None) -> Instance:
        """The instance ``unloadModel`` unloads: the one whose identifier is ``identifier``
        (any case; PROTOCOL.md §3.1 gives the endpoint only an identifier), in ``domain``,
        on the LM Link ``device`` when one is named. Keys and paths are not resolved: a
        name that is no loaded identifier is "not found", never some other instance."""
        instance = self.by_identifier(identifier)
        query: dict[str, Any] = {"identifier": identifier}
        if device is not None:
            query["deviceIdentifier"] = device
        # _matches checks the device (and ignores the identifier, compared above).
        if instance is None or instance.spec.type != domain or not self._matches(instance, query):
            raise failures.no_model_matching_query(
                query, [i.identifier for i in self.loaded(domain)]
            )
        return instance

    def next_tool_call_id(self) -> str:
        return f"call_{next(self._tool_call_ids)}"

    # ---- resolution ----------------------------------------------------------------------

    def _matches(self, instance: Instance, query: dict[str, Any]) -> bool:
        if "path" in query and spec_rank(instance.spec, query["path"]) is None:
            return False
        if "vision" in query and instance.spec.vision != query["vision"]:
            return False
        if "deviceIdentifier" in query and not self.hub.on_device(
            instance.device_identifier, query["deviceIdentifier"]
        ):
            return False
        return not ("domain" in query and instance.spec.type != query["domain"])

    def resolve(
        self, domain: ModelType, specifier: dict[str, Any], *, across_domains: bool = True
    ) -> Instance:
        """The loaded instance a ``ModelSpecifier`` designates, or the error LM Studio sends.

        Every endpoint that takes a model specifier or identifier resolves it here, so names
        match the same way everywhere: an identifier query is an instance identifier or a
        model key/path (:meth:`named`), a path query a model path (:func:`spec_rank`).
        A name that only matches another domain's model is a domain mismatch, unless
        ``across_domains`` is false: then other domains' instances are not looked at.
        """
        self.unload_idle()
        if specifier["type"] == "instanceReference":
            ref = specifier["instanceReference"]
            found = next((i for i in self.instances if i.instance_reference == ref), None)
            if found is None:
                raise failures.specific_model_unloaded()
            if found.spec.type != domain:
                raise self._domain_mismatch(found.spec, domain)
            return found
        query: dict[str, Any] = specifier["query"]
        named = "identifier" in query or "path" in query
        candidates = self.named(query["identifier"]) if "identifier" in query else self.instances
        matching = [i for i in candidates if self._matches(i, query)]
        for instance in matching:
            if instance.spec.type == domain:
                return instance
        if named and matching and across_domains:
            raise self._domain_mismatch(matching[0].spec, domain)
        raise failures.no_model_matching_query(query, [i.identifier for i in self.loaded(domain)])

    def resolve_identifier(
        self,
        domain: ModelType,
        identifier: str,
        *,
        across_domains: bool = True,
        device: str | None = None,
    ) -> Instance:
        """The instance a bare ``identifier`` (``getOrLoad``, ``unloadModel``) designates,
        on the LM Link ``device`` when one is named."""
        query: dict[str, Any] = {"identifier": identifier}
        if device is not None:
            query["deviceIdentifier"] = device
        return self.resolve(
            domain, {"type": "query", "query": query}, across_domains=across_domains
        )

    @staticmethod
    def _domain_mismatch(spec: ModelSpec, expected: ModelType) -> SimulatorError:
        return failures.domain_mismatch(spec.model_key, spec.wire_path, spec.type, expected)

    def script_for(self, instance: Instance) -> ScriptedReply | None:
        """Pop the next scripted reply queued under the identifier or the model key."""
        for key in (instance.identifier, instance.spec.model_key):
            queue = self.scripts.get(key)
            if queue:
                return queue.popleft()
        return None

    def endpoint_fault(
        self, namespace: str, endpoint: str, parameter: Any = None
    ) -> EndpointFault | None:
        """The first endpoint fault that hits this call (counted as used), if any."""
        return next(
            (f for f in self.endpoint_faults if f.take(namespace, endpoint, parameter)), None
        )

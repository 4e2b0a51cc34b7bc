"""Server-wide state shared by every connection: models, scripts, faults, records.

Plain bookkeeping without I/O. Model resolution raises :class:`SimulatorError` carrying the
``displayData`` codes LM Studio uses (PROTOCOL.md §5.8).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from ._catalog import Instance, ModelSpec, ModelType
from ._envelope import SimulatorError, serialized_error
from ._faults import Faults
from ._hub import Hub
from ._scripting import PredictionRecord, ScriptedReply

__all__ = ["ServerState"]

_SAMPLE = 10


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
        for key in loaded:
            spec = self.find_spec(key)
            if spec is None:
                raise ValueError(f"cannot preload {key!r}: not in the catalog")
            self.add_instance(spec, self.default_identifier(spec))

    # ---- catalog and instances -----------------------------------------------------------

    def find_spec(self, key: str) -> ModelSpec | None:
        """A downloaded model by key, variant key, path or indexed identifier."""
        spec = self.catalog.get(key) or self.variants.get(key)
        if spec is not None:
            return spec
        for spec in [*self.catalog.values(), *self.variants.values()]:
            if key in (spec.wire_path, spec.wire_path.rsplit("/", 1)[0]):
                return spec
        return None

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
        return [i for i in self.instances if domain is None or i.spec.type == domain]

    def by_identifier(self, identifier: str) -> Instance | None:
        return next((i for i in self.instances if i.identifier == identifier), None)

    def default_identifier(self, spec: ModelSpec) -> str:
        """The key itself, then ``key:2``, ``key:3``... like LM Studio on collision."""
        if self.by_identifier(spec.model_key) is None:
            return spec.model_key
        for n in itertools.count(2):
            candidate = f"{spec.model_key}:{n}"
            if self.by_identifier(candidate) is None:
                return candidate
        raise AssertionError("unreachable")

    def add_instance(
        self,
        spec: ModelSpec,
        identifier: str,
        *,
        ttl_ms: int | None = None,
        context_length: int | None = None,
        load_fields: list[dict[str, Any]] | None = None,
        device_identifier: str | None = None,
    ) -> Instance:
        instance = Instance(
            spec=spec,
            identifier=identifier,
            instance_reference=f"sim-inst-{next(self._references)}",
            context_length=context_length or spec.default_context_length,
            ttl_ms=ttl_ms,
            load_fields=list(load_fields or []),
            device_identifier=device_identifier,
        )
        self.instances.append(instance)
        return instance

    def next_tool_call_id(self) -> str:
        return f"call_{next(self._tool_call_ids)}"

    # ---- resolution ----------------------------------------------------------------------

    def _loaded_sample(self, domain: ModelType) -> tuple[list[str], int]:
        loaded = self.loaded(domain)
        return [i.identifier for i in loaded[:_SAMPLE]], len(loaded)

    def identifier_not_found(self, identifier: str, domain: ModelType) -> SimulatorError:
        sample, total = self._loaded_sample(domain)
        return SimulatorError(
            serialized_error(
                f'No model with identifier "{identifier}" is loaded',
                display_data={
                    "code": "generic.identifierNotFound",
                    "identifier": identifier,
                    "loadedModelsSample": sample,
                    "totalLoadedModels": total,
                },
            )
        )

    def path_not_found(self, path: str) -> SimulatorError:
        keys = list(self.catalog)
        return SimulatorError(
            serialized_error(
                f'Cannot find a model with path "{path}"',
                display_data={
                    "code": "generic.pathNotFound",
                    "path": path,
                    "availablePathsSample": keys[:_SAMPLE],
                    "totalModels": len(keys),
                },
            )
        )

    def domain_mismatch(self, spec: ModelSpec, expected: ModelType) -> SimulatorError:
        return SimulatorError(
            serialized_error(
                f'Model "{spec.model_key}" is a {spec.type} model, not a {expected} model',
                display_data={
                    "code": "generic.domainMismatch",
                    "path": spec.wire_path,
                    "actualDomain": spec.type,
                    "expectedDomain": expected,
                },
            )
        )

    def _matches(self, instance: Instance, query: dict[str, Any]) -> bool:
        if "identifier" in query and instance.identifier != query["identifier"]:
            return False
        if "path" in query:
            path = instance.spec.wire_path
            if query["path"] != path and not path.startswith(query["path"] + "/"):
                return False
        if "vision" in query and instance.spec.vision != query["vision"]:
            return False
        if "deviceIdentifier" in query and not self.hub.on_device(
            instance.device_identifier, query["deviceIdentifier"]
        ):
            return False
        return not ("domain" in query and instance.spec.type != query["domain"])

    def resolve(
        self, domain: ModelType, specifier: dict[str, Any], *, by_identifier_error: bool
    ) -> Instance:
        """The loaded instance a ``ModelSpecifier`` designates, or a LM Studio error.

        ``by_identifier_error`` selects ``generic.identifierNotFound`` for identifier queries
        (what the app's RPCs report) instead of ``generic.noModelMatchingQuery``.
        """
        if specifier["type"] == "instanceReference":
            ref = specifier["instanceReference"]
            found = next((i for i in self.instances if i.instance_reference == ref), None)
            if found is None:
                raise SimulatorError(
                    serialized_error(
                        "The model instance has been unloaded",
                        display_data={"code": "generic.specificModelUnloaded"},
                    )
                )
            if found.spec.type != domain:
                raise self.domain_mismatch(found.spec, domain)
            return found
        query: dict[str, Any] = specifier["query"]
        for instance in self.instances:
            if self._matches(instance, query):
                if instance.spec.type != domain:
                    if "identifier" in query or "path" in query:
                        raise self.domain_mismatch(instance.spec, domain)
                    continue
                return instance
        if by_identifier_error and "identifier" in query:
            raise self.identifier_not_found(query["identifier"], domain)
        sample, total = self._loaded_sample(domain)
        raise SimulatorError(
            serialized_error(
                "No loaded model satisfies the query",
                display_data={
                    "code": "generic.noModelMatchingQuery",
                    "query": query,
                    "loadedModelsSample": sample,
                    "totalLoadedModels": total,
                },
            )
        )

    def script_for(self, instance: Instance) -> ScriptedReply | None:
        """Pop the next scripted reply queued under the identifier or the model key."""
        for key in (instance.identifier, instance.spec.model_key):
            queue = self.scripts.get(key)
            if queue:
                return queue.popleft()
        return None

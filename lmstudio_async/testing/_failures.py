"""Every model-lookup failure the simulator reports, and the error LM Studio sends for it.

One table, one builder per row; endpoints never build these errors themselves, so a failure of
one kind looks the same whichever endpoint hit it (PROTOCOL.md §3.6, §5.7, §5.8). Each row:
the failure, the ``displayData.code`` sent, how the official clients take it.

* No loaded model matches a query or identifier (``predict``, ``completeRawText``,
  ``tokenize``, ``countTokens``, ``getModelInfo``, ``getLoadConfig``,
  ``getBasePredictionConfig``, ``getInstanceProcessingState``, ``applyPromptTemplate``,
  ``embedString``, ``unloadModel``; the last looks only at its own namespace's instances):
  ``generic.noModelMatchingQuery``. Python 1.5 raises ``LMStudioModelNotFoundError`` (the one
  code it maps to it); JS builds its message from ``displayData.query``.
* An ``instanceReference`` whose instance has been unloaded (JS handles):
  ``generic.specificModelUnloaded``.
* No downloaded model matches a key or path (``loadModel``, ``getOrLoad``,
  ``preloadDraftModel``, ``listDownloadedModelVariants``): ``generic.pathNotFound``, listing
  available model keys.
* The name designates a model of the other domain (an embedding model on ``/llm``):
  ``generic.domainMismatch``.
* The model was unloaded (``unloadModel``, a just-in-time eviction) while a prediction was
  running on it: the prediction ends with the app's bare ``Model is unloaded.`` (its logs
  show this error for work on a model that went away mid-request).
* A load asks for an identifier that is in use: no code, the one-line title
  ``A model with identifier "x" already exists``; Python 1.5 shows it as
  ``Model load error: A model with identifier "x" already exists``.

``generic.identifierNotFound`` is in the protocol's schema, but the official Python suite,
written against the app, expects "model not found" from every lookup above, and Python 1.5
maps only ``noModelMatchingQuery`` to that: the app reports identifier lookups as queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._envelope import SimulatorError, serialized_error

__all__ = [
    "domain_mismatch",
    "identifier_taken",
    "model_unloaded",
    "no_model_matching_query",
    "path_not_found",
    "specific_model_unloaded",
]

_SAMPLE = 10  # how many names LM Studio lists in a "not found" error


def no_model_matching_query(query: dict[str, Any], loaded: Sequence[str]) -> SimulatorError:
    """No loaded model satisfies ``query`` (``loaded``: identifiers loaded in that domain)."""
    return SimulatorError(
        serialized_error(
            "No loaded model satisfies the query",
            display_data={
                "code": "generic.noModelMatchingQuery",
                "query": query,
                "loadedModelsSample": list(loaded[:_SAMPLE]),
                "totalLoadedModels": len(loaded),
            },
        )
    )


def specific_model_unloaded() -> SimulatorError:
    """The instance an ``instanceReference`` named has been unloaded."""
    return SimulatorError(
        serialized_error(
            "The model instance has been unloaded",
            display_data={"code": "generic.specificModelUnloaded"},
        )
    )


def path_not_found(path: str, available: Sequence[str]) -> SimulatorError:
    """No downloaded model matches the key or path ``path`` (``available``: model keys)."""
    return SimulatorError(
        serialized_error(
            f'Cannot find a model with path "{path}"',
            display_data={
                "code": "generic.pathNotFound",
                "path": path,
                "availablePathsSample": list(available[:_SAMPLE]),
                "totalModels": len(available),
            },
        )
    )


def domain_mismatch(model_key: str, path: str, actual: str, expected: str) -> SimulatorError:
    """The model found is a(n) ``actual`` model where an ``expected`` one was asked for."""
    return SimulatorError(
        serialized_error(
            f'Model "{model_key}" is a {actual} model, not a {expected} model',
            display_data={
                "code": "generic.domainMismatch",
                "path": path,
                "actualDomain": actual,
                "expectedDomain": expected,
            },
        )
    )


def identifier_taken(identifier: str) -> SimulatorError:
    """A load asked for an instance identifier that a loaded instance already has.

    The app sends a bare one-line title here (no cause, no suggestion): the official Python
    client's message is then ``Model load error: A model with identifier "x" already exists``.
    """
    return SimulatorError(
        serialized_error(f'A model with identifier "{identifier}" already exists')
    )


def model_unloaded() -> SimulatorError:
    """The instance a prediction was running on has been unloaded meanwhile."""
    return SimulatorError(serialized_error("Model is unloaded."))

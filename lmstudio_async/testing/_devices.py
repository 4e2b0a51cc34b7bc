"""Where a load goes in the simulated LM Link, shared by loads and resource estimates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _envelope as env
from ._envelope import SimulatorError

if TYPE_CHECKING:
    from ._state import ServerState

__all__ = ["placement", "requested_device"]


def requested_device(param: dict[str, Any]) -> str | None:
    env.optional_nullable_str(param, "deviceIdentifier")
    device: str | None = param.get("deviceIdentifier")
    return device


def placement(state: ServerState, requested: str | None) -> str | None:
    """The LM Link device a load runs on (None: this machine), or LM Studio's error."""
    try:
        return state.hub.placement(requested)
    except LookupError as exc:
        raise SimulatorError(env.serialized_error(str(exc))) from None

"""What tests tell the simulator to say, and what the simulator remembers it said."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ._faults import Faults

__all__ = ["PredictionRecord", "PredictionStatus", "ScriptedReply", "ScriptedToolCall"]

PredictionStatus = Literal["running", "finished", "cancelled", "errored", "disconnected"]


@dataclass(frozen=True)
class ScriptedToolCall:
    """A tool call the scripted model emits after its text content.

    ``id`` defaults to a simulator-wide ``call_N``. With ``fail=True`` the simulator sends
    ``toolCallGenerationFailed`` instead of ``toolCallGenerationEnd`` (the prediction goes on).
    """

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    fail: bool = False


@dataclass(frozen=True, kw_only=True)
class ScriptedReply:
    """One queued model reply, consumed by the next prediction on the scripted model.

    ``content`` is streamed word by word unless ``fragments`` gives the split explicitly.
    ``reasoning`` is streamed first, wrapped in ``<think>``/``</think>`` tag fragments.
    ``tool_calls`` follow the content. ``error`` (a serialized LM Studio error) replaces the
    whole reply with a ``channelError``. ``tokens_per_second=None`` streams without pacing.
    ``stop_reason`` defaults to ``"eosFound"`` (also after tool calls, as observed from the
    real app).
    """

    content: str = ""
    fragments: Sequence[str] | None = None
    reasoning: str | None = None
    tool_calls: Sequence[ScriptedToolCall] = ()
    stop_reason: str | None = None
    time_to_first_token: float = 0.0
    tokens_per_second: float | None = None
    faults: Faults | None = None
    error: dict[str, Any] | None = None
    prompt_tokens: int | None = None


@dataclass(kw_only=True)
class PredictionRecord:
    """What the simulator saw and did for one ``predict``/``completeRawText`` channel."""

    connection_id: int
    channel_id: int
    endpoint: str
    model_identifier: str
    history: dict[str, Any] | None
    raw_prompt: str | None
    config_stack: dict[str, Any]
    status: PredictionStatus = "running"
    cancel_received: bool = False
    fragments_sent: int = 0
    content: str = ""
    # True once prompt processing is over (LM Studio's processing state says "generating").
    prompt_processed: bool = False

"""What tests tell the simulator to say, and what the simulator remembers it said."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ._faults import Faults

__all__ = [
    "Fragment",
    "PredictionRecord",
    "PredictionStatus",
    "ReasoningType",
    "ScriptedReply",
    "ScriptedToolCall",
]

PredictionStatus = Literal["running", "finished", "cancelled", "errored", "disconnected"]
ReasoningType = Literal["none", "reasoning", "reasoningStartTag", "reasoningEndTag"]


@dataclass(frozen=True)
class Fragment:
    """One fragment exactly as the scripted model streams it.

    ``reasoning_type`` and ``structural`` become the fragment's ``reasoningType`` and
    ``isStructural``, so any reasoning shape can be played, e.g. reasoning that ends with
    ``</think>`` but never opened (models whose template pre-fills ``<think>``)::

        ScriptedReply(fragments=[
            Fragment("Let me think.", "reasoning"),
            Fragment("</think>", "reasoningEndTag", structural=True),
            "The answer.",
        ])

    ``content`` as a ``str`` may hold lone UTF-16 surrogates (``"\\ud83d"``): they are sent as
    JSON ``\\uXXXX`` escapes, what a Node server emits when it cuts text inside an emoji.
    ``content`` as ``bytes`` is spliced verbatim inside the JSON string, so the text frame
    carries exactly those bytes (``b"\\xff"`` makes the frame invalid UTF-8); the bytes must
    not contain ``"`` or ``\\`` unless escaped.
    """

    content: str | bytes
    reasoning_type: ReasoningType = "none"
    structural: bool = False


@dataclass(frozen=True)
class ScriptedToolCall:
    """A tool call the scripted model emits after its text content.

    ``id`` defaults to a simulator-wide ``call_N``. With ``fail=True`` the simulator sends
    ``toolCallGenerationFailed`` instead of ``toolCallGenerationEnd`` (the prediction goes on).
    ``arguments=None`` leaves the ``arguments`` key out of the tool call request entirely (some
    models call argument-less tools that way). ``argument_fragments`` streams the arguments'
    JSON text in those pieces (``toolCallGenerationArgumentFragmentGenerated`` packets)
    instead of one piece; the final request still carries ``arguments``.
    """

    name: str
    arguments: dict[str, Any] | None = field(default_factory=dict)
    id: str | None = None
    fail: bool = False
    argument_fragments: Sequence[str] | None = None


@dataclass(frozen=True, kw_only=True)
class ScriptedReply:
    """One model reply: queued with :meth:`Simulator.script` or returned by a rule.

    ``content`` is streamed word by word unless ``fragments`` gives the split explicitly
    (plain strings, or :class:`Fragment` for per-fragment reasoning type, structural flag and
    raw bytes). ``reasoning`` is streamed first, wrapped in ``<think>``/``</think>`` tag
    fragments. ``tool_calls`` follow the content. ``error`` (a serialized LM Studio error, see
    :func:`lmstudio_error`) replaces the whole reply with a ``channelError``.
    ``tokens_per_second=None`` uses the simulator's default pacing (none unless
    ``Simulator(tokens_per_second=...)``); ``time_to_first_token`` is in seconds.
    ``stop_reason`` defaults to ``"eosFound"`` (also after tool calls, as observed from the
    real app). ``prompt_tokens`` overrides the prompt's token count (it drives prompt
    progress and the context-length check); ``prompt_tokens_per_second`` paces prompt
    processing (progress packets are sent every 512 tokens, LM Studio's batch size).
    """

    content: str = ""
    fragments: Sequence[str | Fragment] | None = None
    reasoning: str | None = None
    tool_calls: Sequence[ScriptedToolCall] = ()
    stop_reason: str | None = None
    time_to_first_token: float = 0.0
    tokens_per_second: float | None = None
    faults: Faults | None = None
    error: dict[str, Any] | None = None
    prompt_tokens: int | None = None
    prompt_tokens_per_second: float | None = None

    def __post_init__(self) -> None:
        # Refused here rather than when played: infinity as a wait hangs the prediction and a
        # negative one crashes its channel, far from the test that wrote it.
        for name in PACING_FIELDS:
            problem = pacing_problem(name, getattr(self, name))
            if problem is not None:
                raise ValueError(f"ScriptedReply.{name} {problem}")
        if self.prompt_tokens is not None and (
            isinstance(self.prompt_tokens, bool)
            or not isinstance(self.prompt_tokens, int)
            or self.prompt_tokens < 0
        ):
            raise ValueError(
                f"ScriptedReply.prompt_tokens must be a whole number, 0 or more, "
                f"not {self.prompt_tokens!r}"
            )


PACING_FIELDS = ("time_to_first_token", "tokens_per_second", "prompt_tokens_per_second")


def pacing_problem(name: str, value: object) -> str | None:
    """What is wrong with a :class:`ScriptedReply` pacing value (``None``: nothing)."""
    if name != "time_to_first_token" and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"must be a finite number, not {value!r}"
    if name == "time_to_first_token":
        return None if value >= 0 else f"must be 0 or more seconds, not {value!r}"
    if value <= 0:
        return (
            f"must be more than 0 per second (leave it unset for the simulator's pacing), "
            f"not {value!r}"
        )
    return None


@dataclass(frozen=True, kw_only=True)
class PredictionRequest:
    """What a rule's responder sees of one prediction (all wire-form data, read-only).

    ``endpoint`` is ``"predict"`` or ``"completeRawText"``; ``model`` the loaded instance's
    identifier and ``model_key`` its model key; ``history`` the ``ChatHistoryData`` (``None``
    for raw completions, whose text is ``raw_prompt``); ``config`` the flattened prediction
    config (``{"llm.prediction.temperature": 0.2, ...}``); ``tools`` the offered tool
    definitions (``[]`` when none); ``last_user_message`` the text of the last user message
    (the raw prompt for completions) and ``last_message_role`` the role of the last message.
    """

    endpoint: str
    model: str
    model_key: str
    history: Mapping[str, Any] | None
    raw_prompt: str | None
    config: Mapping[str, Any]
    tools: Sequence[Mapping[str, Any]]
    last_user_message: str | None
    last_message_role: str | None


Responder = Callable[[PredictionRequest], "ScriptedReply | Awaitable[ScriptedReply | None] | None"]
"""A rule's reply computed per request; returning ``None`` passes to the next rule."""


@dataclass(kw_only=True, eq=False)
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
    # Pieces, joined on read: appending to one string attribute per fragment copies the whole
    # reply each time, which made a 10 MB echo quadratic.
    _pieces: list[str] = field(default_factory=list, repr=False)

    @property
    def content(self) -> str:
        """The text of every fragment sent so far (reasoning and tags included)."""
        if len(self._pieces) > 1:
            self._pieces[:] = ["".join(self._pieces)]
        return self._pieces[0] if self._pieces else ""

    @content.setter
    def content(self, value: str) -> None:
        self._pieces[:] = [value]

    def add_content(self, piece: str) -> None:
        """Record one more fragment's text (constant time)."""
        self._pieces.append(piece)

    # True once prompt processing is over (LM Studio's processing state says "generating").
    prompt_processed: bool = False

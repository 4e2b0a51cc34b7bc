"""Rules: replies aimed at predictions by what they ask, first match wins.

A rule pairs match conditions with a reply (a :class:`ScriptedReply`, or a responder callable
that builds one from the :class:`PredictionRequest`). Matching is pure: no I/O, no state
beyond each rule's use count.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._scripting import PredictionRequest, Responder, ScriptedReply

__all__ = ["Rule", "choose_reply", "last_message_facts"]

_ENDPOINTS = ("predict", "completeRawText")
_ROLES = ("system", "user", "assistant", "tool")  # LM Studio's chat roles


@dataclass(kw_only=True, eq=False)
class Rule:
    """One responder and the predictions it answers (every given condition must hold).

    ``model`` matches the instance identifier or the model key; ``last_user_message`` is a
    regular expression searched (``re.search``) in the last user message's text (the raw
    prompt for completions); ``last_message_role`` (``"user"``, ``"tool"``, ...) makes "after a
    tool result" expressible; ``has_tools`` tests whether tools were offered; ``endpoint`` is
    ``"predict"`` or ``"completeRawText"``. ``times`` bounds how often the rule answers
    (``None``: without limit); ``used`` counts its answers so far.
    """

    reply: ScriptedReply | Responder
    model: str | None = None
    last_user_message: re.Pattern[str] | None = None
    last_message_role: str | None = None
    has_tools: bool | None = None
    endpoint: str | None = None
    times: int | None = None
    used: int = field(default=0)

    def __post_init__(self) -> None:
        if self.endpoint is not None and self.endpoint not in _ENDPOINTS:
            raise ValueError(f"endpoint must be one of {_ENDPOINTS}, not {self.endpoint!r}")
        if isinstance(self.times, bool) or (
            self.times is not None and (not isinstance(self.times, int) or self.times < 1)
        ):
            raise ValueError(f"times must be at least 1 (a whole number), not {self.times!r}")
        # Conditions that no request can meet would make the rule silently dead.
        if self.model is not None and not (isinstance(self.model, str) and self.model):
            raise ValueError(
                f"model must be an instance identifier or model key, not {self.model!r}"
            )
        if self.last_message_role is not None and self.last_message_role not in _ROLES:
            raise ValueError(
                f"last_message_role must be one of {', '.join(_ROLES)}, "
                f"not {self.last_message_role!r}"
            )
        if not isinstance(self.reply, ScriptedReply) and not callable(self.reply):
            raise TypeError("reply must be a ScriptedReply or a callable returning one")

    @property
    def exhausted(self) -> bool:
        """True once the rule has answered ``times`` predictions."""
        return self.times is not None and self.used >= self.times

    def matches(self, request: PredictionRequest) -> bool:
        """Whether every condition holds for ``request`` (the use count is not checked)."""
        if self.model is not None and self.model not in (request.model, request.model_key):
            return False
        if self.last_user_message is not None and (
            request.last_user_message is None
            or self.last_user_message.search(request.last_user_message) is None
        ):
            return False
        if self.last_message_role is not None and request.last_message_role != (
            self.last_message_role
        ):
            return False
        if self.has_tools is not None and bool(request.tools) != self.has_tools:
            return False
        return self.endpoint is None or request.endpoint == self.endpoint


async def choose_reply(rules: Sequence[Rule], request: PredictionRequest) -> ScriptedReply | None:
    """The reply of the first live rule that matches and answers; ``None`` if none does."""
    for rule in rules:
        if rule.exhausted or not rule.matches(request):
            continue
        # Count the use at match time: an async responder yields to the event loop, and a
        # concurrent prediction must not find the rule still live and overrun ``times``.
        rule.used += 1
        reply = rule.reply
        if isinstance(reply, ScriptedReply):
            return reply
        try:
            produced = reply(request)
            if inspect.isawaitable(produced):
                produced = await produced
        except BaseException:
            rule.used -= 1  # it never answered (a failing or cancelled responder)
            raise
        if produced is None:
            rule.used -= 1  # it passed: the use goes back for the next prediction
            continue
        if not isinstance(produced, ScriptedReply):
            raise TypeError(
                f"a rule's responder returned {type(produced).__name__}; "
                "return a ScriptedReply or None"
            )
        return produced
    return None


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content", [])
    if isinstance(content, str):
        return content
    return "".join(
        str(part.get("text", ""))
        for part in content
        if isinstance(part, Mapping) and part.get("type") == "text"
    )


def last_message_facts(
    history: Mapping[str, Any] | None, raw_prompt: str | None
) -> tuple[str | None, str | None]:
    """``(last user message text, last message role)`` of a request."""
    if history is None:
        return raw_prompt, None
    messages = [m for m in history.get("messages", []) if isinstance(m, Mapping)]
    role = messages[-1].get("role") if messages else None
    user = next((_text(m) for m in reversed(messages) if m.get("role") == "user"), None)
    return user, role if isinstance(role, str) else None

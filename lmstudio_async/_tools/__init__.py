"""Tool use: tool definitions from functions, and the ``act()`` loop."""

from ._act import (
    ActCallbacks,
    ActResult,
    ActRound,
    GuardDecision,
    InvalidToolRequestHandler,
    ToolCallGuard,
    ToolCallOutcome,
    run_act,
)
from ._definition import Tool, ToolLike, to_tools

__all__ = [
    "ActCallbacks",
    "ActResult",
    "ActRound",
    "GuardDecision",
    "InvalidToolRequestHandler",
    "Tool",
    "ToolCallGuard",
    "ToolCallOutcome",
    "ToolLike",
    "run_act",
    "to_tools",
]

"""lmstudio_async: an asyncio-native Python SDK for LM Studio."""

from ._client import LMStudioClient
from ._errors import (
    LMStudioAuthenticationError,
    LMStudioCancelledError,
    LMStudioChannelError,
    LMStudioClientClosedError,
    LMStudioConfigError,
    LMStudioConnectionError,
    LMStudioError,
    LMStudioModelNotFoundError,
    LMStudioNotFoundError,
    LMStudioPresetNotFoundError,
    LMStudioProtocolError,
    LMStudioServerError,
    LMStudioStructuredOutputError,
    LMStudioTimeoutError,
    LMStudioToolCallError,
    LMStudioUsageError,
)
from ._namespaces import LLM, EmbeddingModel, EmbeddingNamespace, LLMNamespace, SystemNamespace
from ._namespaces.system import LMStudioVersion
from ._prediction import PredictionStream
from ._prediction._structured import GBNFGrammar
from ._timeouts import Timeouts
from ._tools import ActResult, ActRound, GuardDecision, Tool, ToolCallOutcome
from ._version import __version__
from .types import (
    Chat,
    ChatMessage,
    EmbeddingLoadConfig,
    EmbeddingModelInfo,
    EmbeddingModelInstanceInfo,
    LLMInfo,
    LLMInstanceInfo,
    LLMLoadConfig,
    PredictionConfig,
    PredictionFragment,
    PredictionResult,
    PredictionStats,
)

__all__ = [
    "ActResult",
    "ActRound",
    "Chat",
    "ChatMessage",
    "EmbeddingLoadConfig",
    "EmbeddingModel",
    "EmbeddingModelInfo",
    "EmbeddingModelInstanceInfo",
    "EmbeddingNamespace",
    "GBNFGrammar",
    "GuardDecision",
    "LLM",
    "LLMInfo",
    "LLMInstanceInfo",
    "LLMLoadConfig",
    "LLMNamespace",
    "LMStudioAuthenticationError",
    "LMStudioCancelledError",
    "LMStudioChannelError",
    "LMStudioClient",
    "LMStudioClientClosedError",
    "LMStudioConfigError",
    "LMStudioConnectionError",
    "LMStudioError",
    "LMStudioModelNotFoundError",
    "LMStudioNotFoundError",
    "LMStudioPresetNotFoundError",
    "LMStudioProtocolError",
    "LMStudioServerError",
    "LMStudioStructuredOutputError",
    "LMStudioTimeoutError",
    "LMStudioToolCallError",
    "LMStudioUsageError",
    "LMStudioVersion",
    "PredictionConfig",
    "PredictionFragment",
    "PredictionResult",
    "PredictionStats",
    "PredictionStream",
    "SystemNamespace",
    "Timeouts",
    "Tool",
    "ToolCallOutcome",
    "__version__",
]

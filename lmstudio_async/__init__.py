"""lmstudio_async: an asyncio-native Python SDK for LM Studio."""

import typing as _typing

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
    LMStudioRequestRejectedError,
    LMStudioServerError,
    LMStudioStructuredOutputError,
    LMStudioTimeoutError,
    LMStudioToolCallError,
    LMStudioUsageError,
)
from ._lazy import lazy_exports as _lazy_exports
from ._namespaces import (
    LLM,
    EmbeddingModel,
    EmbeddingNamespace,
    FilesNamespace,
    LLMNamespace,
    LMLinkNamespace,
    ModelSearchResultDownloadOption,
    ModelSearchResultEntry,
    RepositoryNamespace,
    SystemNamespace,
)
from ._namespaces.system import LMStudioVersion, ServiceInfo
from ._prediction import PredictionStream
from ._telemetry import disable_opentelemetry, enable_opentelemetry
from ._timeouts import Timeouts
from ._version import __version__
from .types import (
    Chat,
    ChatMessage,
    EmbeddingLoadConfig,
    EmbeddingModelInfo,
    EmbeddingModelInstanceInfo,
    FileHandle,
    LLMInfo,
    LLMInstanceInfo,
    LLMLoadConfig,
    PredictionConfig,
    PredictionFragment,
    PredictionResult,
    PredictionStats,
)

# Exceptions show up in tracebacks and logs by their module: name the one users import
# them from (`lmstudio_async.LMStudioNotFoundError`), not the private module defining them.
for _error in [v for v in list(globals().values()) if isinstance(v, type)]:
    if issubclass(_error, LMStudioError):
        _error.__module__ = __name__
del _error

if _typing.TYPE_CHECKING:
    from ._prediction._structured import GBNFGrammar
    from ._tools import ActResult, ActRound, GuardDecision, Tool, ToolCallOutcome

# Tool use and structured output are imported on first use: most programs need neither, and
# every millisecond of `import lmstudio_async` is paid by every short-lived script.
_LAZY = {
    "ActResult": "._tools",
    "ActRound": "._tools",
    "GBNFGrammar": "._prediction._structured",
    "GuardDecision": "._tools",
    "Tool": "._tools",
    "ToolCallOutcome": "._tools",
}


__getattr__, __dir__ = _lazy_exports(globals(), _LAZY)


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
    "FileHandle",
    "FilesNamespace",
    "GBNFGrammar",
    "GuardDecision",
    "LLM",
    "LLMInfo",
    "LLMInstanceInfo",
    "LLMLoadConfig",
    "LLMNamespace",
    "LMLinkNamespace",
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
    "LMStudioRequestRejectedError",
    "LMStudioServerError",
    "LMStudioStructuredOutputError",
    "LMStudioTimeoutError",
    "LMStudioToolCallError",
    "LMStudioUsageError",
    "LMStudioVersion",
    "ModelSearchResultDownloadOption",
    "ModelSearchResultEntry",
    "PredictionConfig",
    "PredictionFragment",
    "PredictionResult",
    "PredictionStats",
    "PredictionStream",
    "RepositoryNamespace",
    "ServiceInfo",
    "SystemNamespace",
    "Timeouts",
    "Tool",
    "ToolCallOutcome",
    "disable_opentelemetry",
    "enable_opentelemetry",
    "__version__",
]

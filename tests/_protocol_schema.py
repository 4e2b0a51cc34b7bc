"""Where the tests find LM Studio's protocol schema (lms.json), and what to say without it.

lms.json is the JSON schema of every protocol message, generated from lmstudio-js and published
by the official Python SDK (lmstudio-ai/lmstudio-python, ``sdk-schema/lms.json``). It is not
part of this repository; tests that check frames against it skip when it is absent, and the
skip reason says how to get it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SCHEMA_ENV_VAR", "SCHEMA_MISSING", "SCHEMA_PATH", "misconfigured_schema"]

SCHEMA_ENV_VAR = "LMSTUDIO_PROTOCOL_SCHEMA"
_IN_CLONE = Path(__file__).resolve().parent / "protocol-schema" / "lms.json"
# The workspace this project grew up in keeps it beside the clone.
_BESIDE_CLONE = Path(__file__).resolve().parents[1].parent / "shared" / "protocol" / "lms.json"


def _find() -> Path:
    configured = os.environ.get(SCHEMA_ENV_VAR, "").strip()
    if configured:
        return Path(configured)
    return next((p for p in (_IN_CLONE, _BESIDE_CLONE) if p.is_file()), _IN_CLONE)


SCHEMA_PATH = _find()

SCHEMA_MISSING = (
    "needs LM Studio's protocol schema lms.json, which is not in this clone: download "
    "sdk-schema/lms.json from github.com/lmstudio-ai/lmstudio-python (commit 2f245aed533f) "
    f"to tests/protocol-schema/lms.json, or set {SCHEMA_ENV_VAR}=/path/to/lms.json"
)


def misconfigured_schema() -> str | None:
    """Why ``$LMSTUDIO_PROTOCOL_SCHEMA`` is unusable, or ``None`` (unset, or a file).

    Setting it says "check against this schema": a path that is not a file is a mistake to
    report, not a reason to skip the schema tests silently.
    """
    configured = os.environ.get(SCHEMA_ENV_VAR, "").strip()
    if not configured or Path(configured).is_file():
        return None
    return (
        f"{SCHEMA_ENV_VAR} is set to {configured}, which is not a file. Point it at lms.json "
        "(sdk-schema/lms.json from github.com/lmstudio-ai/lmstudio-python), or unset it to use "
        "tests/protocol-schema/lms.json when present."
    )

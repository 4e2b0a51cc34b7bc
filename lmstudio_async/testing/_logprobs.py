"""Per-token log-probabilities for ``fragment.tokens`` when a prediction asks for ``logProbs``.

Deterministic: a fragment splits into word-like tokens (leading whitespace attached, as BPE
tokenizers do, so the texts add up to the fragment), and a token's id and log-probability come
from a hash of its text, so tests can predict them. The candidates are the chosen token plus
``N - 1`` less likely alternatives, most likely first, as LM Studio lists them.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

__all__ = ["requested_candidates", "token_entries"]

_KEY = "llm.prediction.logProbs"
_PIECE_RE = re.compile(r"\s*(?:\w+|[^\w\s])|\s+")


def requested_candidates(config: dict[str, Any]) -> int | None:
    """How many candidates per token the flattened prediction config asks for, or ``None``."""
    value = config.get(_KEY)
    if isinstance(value, dict):
        if not value.get("checked"):
            return None
        value = value.get("value")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def log_prob(text: str) -> float:
    """The simulated log-probability of a token: in (-2, 0], stable per text."""
    return -round((zlib.crc32(text.encode()) % 2000) / 1000, 3)


def token_id_of(text: str) -> int:
    """The simulated vocabulary id of a token."""
    return zlib.crc32(text.encode()) % 150_000 + 100


def token_entries(content: str, candidates: int) -> list[dict[str, Any]]:
    """``fragment.tokens`` for one fragment: each token with its log-probability and candidates."""
    entries: list[dict[str, Any]] = []
    for text in _PIECE_RE.findall(content):
        token_id = token_id_of(text)
        chosen = log_prob(text)
        entry: dict[str, Any] = {"text": text, "id": token_id, "logProb": chosen}
        if candidates:
            entry["candidates"] = [
                {"text": text, "id": token_id, "logProb": chosen},
                *(
                    {"text": f"{text}~{n}", "id": token_id + n, "logProb": round(chosen - n, 3)}
                    for n in range(1, candidates)
                ),
            ]
        entries.append(entry)
    return entries

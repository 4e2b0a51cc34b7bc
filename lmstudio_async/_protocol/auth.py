"""The authentication packet and API-token handling (PROTOCOL.md §1.3)."""

from __future__ import annotations

import os
import re
import secrets
from typing import Final

import msgspec

from .._errors import LMStudioUsageError

__all__ = ["AuthReply", "Credentials", "decode_auth_reply", "resolve_credentials"]

_TOKEN_PATTERN: Final = re.compile(
    r"^sk-lm-(?P<identifier>[a-zA-Z0-9]{8}):(?P<passkey>[a-zA-Z0-9]{20})$"
)
# LM Studio's JS SDK reads LM_API_TOKEN, the Python SDK LMSTUDIO_API_TOKEN; honour both.
TOKEN_ENV_VARS: Final = ("LM_API_TOKEN", "LMSTUDIO_API_TOKEN")


class Credentials(msgspec.Struct, frozen=True):
    """One client identity, used on every namespace socket of a client (§6 item 15)."""

    identifier: str
    passkey: str
    from_token: bool

    def __repr__(self) -> str:
        # The passkey is a secret: never part of a repr, log line or error message.
        kind = "api-token" if self.from_token else "guest"
        return f"Credentials({kind}, identifier={self.identifier!r})"

    def auth_packet(self) -> bytes:
        return msgspec.json.encode(
            {"authVersion": 1, "clientIdentifier": self.identifier, "clientPasskey": self.passkey}
        )


class AuthReply(msgspec.Struct, frozen=True):
    success: bool
    error: str | None = None


_reply_decoder: Final = msgspec.json.Decoder(AuthReply)


def decode_auth_reply(frame: str | bytes) -> AuthReply:
    return _reply_decoder.decode(frame)


def _parse_token(token: str, *, source: str) -> Credentials:
    match = _TOKEN_PATTERN.match(token.strip())
    if match is None:
        raise LMStudioUsageError(
            f"The API token from {source} is not a valid LM Studio token: expected the form "
            "'sk-lm-<8 letters or digits>:<20 letters or digits>'. Copy it again from LM "
            "Studio's Developer settings, or leave it unset to connect as a guest."
        )
    return Credentials(match["identifier"], match["passkey"], from_token=True)


def resolve_credentials(api_token: str | None) -> Credentials:
    """Explicit token > ``LM_API_TOKEN`` > ``LMSTUDIO_API_TOKEN`` > a fresh guest identity."""
    if api_token is not None and api_token.strip():
        return _parse_token(api_token, source="the api_token argument")
    for name in TOKEN_ENV_VARS:
        value = os.environ.get(name, "")
        if value.strip():
            return _parse_token(value, source=f"the {name} environment variable")
    return Credentials(
        "guest:" + secrets.token_urlsafe(18), secrets.token_urlsafe(18), from_token=False
    )

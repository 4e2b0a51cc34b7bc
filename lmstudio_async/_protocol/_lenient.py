"""Forward compatibility for protocol enumerations.

A newer LM Studio may send a stop reason or reasoning type this client does not know. The public
structs keep their ``Literal`` annotations (what users compare against); only when strict
decoding of a known packet fails is it decoded again with those fields as plain strings, so the
prediction still completes and the new value reaches the user unchanged. The hot path never
comes here.
"""

from __future__ import annotations

from typing import Any, Final, Literal, get_origin

import msgspec

from ..types.prediction import PredictionFragment, PredictionStats

__all__ = ["recover_predict_packet"]


def _loosened(cls: type[msgspec.Struct]) -> Any:
    """A copy of a wire struct whose ``Literal`` fields accept any string."""
    fields: list[tuple[str, Any, Any] | tuple[str, Any]] = []
    for field in msgspec.structs.fields(cls):
        annotation = str if get_origin(field.type) is Literal else field.type
        if field.default is not msgspec.NODEFAULT:
            fields.append((field.name, annotation, field.default))
        elif field.default_factory is not msgspec.NODEFAULT:
            factory = msgspec.field(default_factory=field.default_factory)
            fields.append((field.name, annotation, factory))
        else:
            fields.append((field.name, annotation))
    return msgspec.defstruct(f"Lenient{cls.__name__}", fields, rename="camel", kw_only=True)


_LenientFragment: Final = _loosened(PredictionFragment)
_LenientStats: Final = _loosened(PredictionStats)


def _fragment(value: Any) -> PredictionFragment:
    loose = msgspec.convert(value, _LenientFragment)
    return PredictionFragment(**msgspec.structs.asdict(loose))


def _stats(value: Any) -> PredictionStats:
    loose = msgspec.convert(value, _LenientStats)
    return PredictionStats(**msgspec.structs.asdict(loose))


def recover_predict_packet(packet: dict[str, Any], strict: Any) -> Any:
    """Decode a known predict packet that failed strict validation, or raise.

    ``strict`` is the strict packet decoder's type; only enumeration values are loosened, so a
    packet that is malformed in any other way still raises :class:`msgspec.ValidationError`.
    """
    kind = packet.get("type")
    if kind == "fragment" and isinstance(packet.get("fragment"), dict):
        decoded = msgspec.convert({**packet, "fragment": "_"}, strict)
        return msgspec.structs.replace(decoded, fragment=_fragment(packet["fragment"]))
    if kind == "success" and isinstance(packet.get("stats"), dict):
        decoded = msgspec.convert({**packet, "stats": {"stopReason": "failed"}}, strict)
        return msgspec.structs.replace(decoded, stats=_stats(packet["stats"]))
    msgspec.convert(packet, strict)  # re-raise the original, precise validation error
    raise AssertionError("unreachable: the strict decoder accepted what it rejected")

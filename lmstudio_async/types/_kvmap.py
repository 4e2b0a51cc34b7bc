"""The machinery shared by every typed config: one table row per option, used both ways.

A row says which attribute maps to which KV key, how the value is validated, and how it is
shaped on the wire (plain value or ``{"checked", "value"}`` checkbox). ``to_kv`` walks the rows
forwards, ``from_kv`` backwards, and ``from_mapping`` resolves snake_case and camelCase names.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from .._errors import LMStudioConfigError
from .kv import KVConfig, KVField

Validator = Callable[[str, Any], Any]
"""``validate(option_name, value) -> normalised value``; raises LMStudioConfigError."""

_NOT_SET: Any = object()


@dataclass(frozen=True)
class Option:
    """One config option: attribute, KV key, validation and wire shape.

    ``checkbox`` rows are sent as ``{"checked": True, "value": v}``; ``False`` (when the
    validator allows it) is sent as ``{"checked": False, "value": placeholder}``. ``encode`` /
    ``decode`` customise the wire value of structured options; ``decode`` receives the
    attribute's current value so several keys can fill one attribute (``gpu``).
    """

    attr: str
    key: str
    validate: Validator
    checkbox: bool = False
    placeholder: Any = None
    encode: Callable[[Any], Any] | None = None
    decode: Callable[[Any, Any], Any] | None = None
    aliases: tuple[str, ...] = ()

    def to_wire(self, value: Any) -> Any:
        """Return the KV value for an attribute value, or ``_NOT_SET`` to send nothing."""
        if self.checkbox:
            if value is False:
                return {"checked": False, "value": self.placeholder}
            return {"checked": True, "value": value}
        return self.encode(value) if self.encode is not None else value

    def from_wire(self, wire: Any, current: Any) -> Any:
        """Return the attribute value for a KV value (inverse of :meth:`to_wire`)."""
        if self.checkbox:
            if not isinstance(wire, Mapping):
                return wire
            return wire.get("value") if wire.get("checked") else False
        return self.decode(wire, current) if self.decode is not None else wire


def camel(name: str) -> str:
    """``top_p_sampling`` -> ``topPSampling``."""
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


@dataclass(frozen=True)
class Table:
    """All options of one config class, indexed for both directions."""

    what: str
    options: tuple[Option, ...]

    def __post_init__(self) -> None:
        names: dict[str, str] = {}
        for opt in self.options:
            names[opt.attr] = opt.attr
            names[camel(opt.attr)] = opt.attr
            for alias in opt.aliases:
                names[alias] = opt.attr
        names["raw"] = "raw"
        object.__setattr__(self, "names", names)
        by_key: dict[str, list[Option]] = {}
        for opt in self.options:
            by_key.setdefault(opt.key, []).append(opt)
        object.__setattr__(self, "by_key", by_key)
        object.__setattr__(self, "by_attr", {o.attr: o for o in self.options})

    names: dict[str, str] = field(init=False, repr=False)  # accepted spelling -> attribute
    by_key: dict[str, list[Option]] = field(init=False, repr=False)
    by_attr: dict[str, Option] = field(init=False, repr=False)

    def resolve(self, name: object) -> str:
        """Map an accepted spelling to its attribute, or raise a helpful error."""
        attr = self.names.get(name) if isinstance(name, str) else None
        if attr is not None:
            return attr
        valid = sorted({o.attr for o in self.options} | {"raw"})
        close = difflib.get_close_matches(str(name), list(self.names), n=1)
        hint = f" Did you mean {self.names[close[0]]!r}?" if close else ""
        raise LMStudioConfigError(
            f"Unknown {self.what} option {name!r}.{hint} Valid options (snake_case, or the "
            f"TypeScript camelCase spelling): {', '.join(valid)}."
        )

    def validate_all(self, obj: msgspec.Struct) -> None:
        """Validate and normalise every set attribute of ``obj`` in place."""
        for opt in self.options:
            value = getattr(obj, opt.attr)
            if value is not None:
                new = opt.validate(opt.attr, value)
                if new is not value:
                    setattr(obj, opt.attr, new)
        raw = getattr(obj, "raw", None)
        if raw is not None and not isinstance(raw, KVConfig):
            obj.raw = to_kvconfig(self.what, raw)  # type: ignore[attr-defined]

    def to_kv(self, obj: msgspec.Struct) -> list[KVField]:
        """Translate ``obj`` into KV fields: ``raw`` first, typed options override."""
        values: dict[str, Any] = {}
        raw = getattr(obj, "raw", None)
        if raw is not None:
            for kv in raw.fields:
                values[kv.key] = kv.value
        for opt in self.options:
            value = getattr(obj, opt.attr)
            if value is not None:
                wire = opt.to_wire(value)
                if wire is not _NOT_SET:
                    values[opt.key] = wire
        return [KVField(key=k, value=v) for k, v in values.items()]

    def attrs_from_kv(self, config: KVConfig) -> dict[str, Any]:
        """Reverse of :meth:`to_kv`; unknown keys and unrepresentable values are skipped."""
        attrs: dict[str, Any] = {}
        for kv in config.fields:
            for opt in self.by_key.get(kv.key, ()):
                try:
                    value = opt.from_wire(kv.value, attrs.get(opt.attr))
                    if value is not None:
                        attrs[opt.attr] = opt.validate(opt.attr, value)
                except (LMStudioConfigError, msgspec.ValidationError, TypeError, ValueError):
                    continue  # a server value this client cannot represent: leave it unset
        return attrs

    def attrs_from_mapping(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Resolve spellings in a user mapping, refusing unknown and duplicated names."""
        attrs: dict[str, Any] = {}
        for name, value in values.items():
            attr = self.resolve(name)
            if attr in attrs:
                raise LMStudioConfigError(
                    f"The {self.what} option {attr!r} was given twice (as {name!r} and under "
                    "another spelling); give it once."
                )
            attrs[attr] = value
        return attrs


# ---- validators -------------------------------------------------------------------------


def _fail(name: str, value: Any, expected: str) -> LMStudioConfigError:
    return LMStudioConfigError(f"Invalid value for {name!r}: {value!r:.80} (expected {expected}).")


def number(
    lo: float | None = None, hi: float | None = None, *, allow_false: bool = False
) -> Validator:
    """A real number within ``[lo, hi]``; optionally ``False`` for "off"."""
    expected = _range_text("a number", lo, hi, allow_false)

    def validate(name: str, value: Any) -> Any:
        if value is False and allow_false:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise _fail(name, value, expected)
        if (lo is not None and value < lo) or (hi is not None and value > hi) or math.isinf(value):
            raise _fail(name, value, expected)
        return value

    return validate


def integer(
    lo: int | None = None, hi: int | None = None, *, allow_false: bool = False
) -> Validator:
    """An int within ``[lo, hi]``; optionally ``False`` for "off"."""
    expected = _range_text("an integer", lo, hi, allow_false)

    def validate(name: str, value: Any) -> Any:
        if value is False and allow_false:
            return value
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # servers may send 4096.0; keep ints on the wire
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(name, value, expected)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise _fail(name, value, expected)
        return value

    return validate


def _range_text(kind: str, lo: float | None, hi: float | None, allow_false: bool) -> str:
    if lo is not None and hi is not None:
        text = f"{kind} from {lo} to {hi}"
    elif lo is not None:
        text = f"{kind} >= {lo}"
    elif hi is not None:
        text = f"{kind} <= {hi}"
    else:
        text = kind
    return text + (", or False to turn it off" if allow_false else "")


def boolean(name: str, value: Any) -> Any:
    """``True`` or ``False``."""
    if not isinstance(value, bool):
        raise _fail(name, value, "True or False")
    return value


def string(name: str, value: Any) -> Any:
    """Any str."""
    if not isinstance(value, str):
        raise _fail(name, value, "a str")
    return value


def string_list(name: str, value: Any) -> Any:
    """A list of str (a bare str is refused: it is almost always a mistake)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise _fail(name, value, "a list of str")
    items = list(value)
    if not all(isinstance(item, str) for item in items):
        raise _fail(name, value, "a list of str")
    return items


def int_list(name: str, value: Any) -> Any:
    """A list of int."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise _fail(name, value, "a list of int")
    items = list(value)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise _fail(name, value, "a list of int")
    return items


def one_of(choices: Sequence[str], *, allow_false: bool = False) -> Validator:
    """One of the given strings; optionally ``False`` for "off"."""
    expected = "one of " + ", ".join(repr(c) for c in choices)
    if allow_false:
        expected += ", or False to turn it off"

    def validate(name: str, value: Any) -> Any:
        if value is False and allow_false:
            return value
        if not isinstance(value, str) or value not in choices:
            raise _fail(name, value, expected)
        return value

    return validate


S = TypeVar("S", bound=msgspec.Struct)


def struct_value(cls: type[S], expected: str) -> Validator:
    """An instance of ``cls``, or a dict of its fields (snake_case or camelCase keys)."""
    to_camel = {f.name: f.encode_name for f in msgspec.structs.fields(cls)}

    def validate(name: str, value: Any) -> Any:
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            data = {to_camel.get(k, k): v for k, v in value.items()}
            try:
                return msgspec.convert(data, cls)
            except msgspec.ValidationError as exc:
                raise _fail(name, value, f"{expected} ({exc})") from exc
        raise _fail(name, value, expected)

    return validate


def to_kvconfig(what: str, raw: Any) -> KVConfig:
    """Accept a :class:`KVConfig`, its wire dict ``{"fields": [...]}``, or ``{key: value}``."""
    if isinstance(raw, KVConfig):
        return raw
    if isinstance(raw, Mapping):
        if set(raw) == {"fields"} and isinstance(raw["fields"], list):
            try:
                return msgspec.convert(raw, KVConfig)
            except msgspec.ValidationError as exc:
                raise _fail("raw", raw, f"a KVConfig ({exc})") from exc
        if all(isinstance(k, str) for k in raw):
            return KVConfig.from_dict(raw)
    raise _fail(
        "raw",
        raw,
        f"a KVConfig, {{'fields': [...]}} or a {{dotted_key: value}} dict for the {what}",
    )


def not_set() -> Any:
    """The marker an ``encode`` function returns to send no KV field."""
    return _NOT_SET

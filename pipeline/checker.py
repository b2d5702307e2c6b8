"""A generic, annotation-driven checker for frozen dataclasses, and the one-line error format.

`check_fields(obj)` walks a dataclass's fields by their annotations (`str`, `bool`, `int`,
`float`, `Literal[...]`, unions, `tuple[X, ...]`, `Mapping[K, V]`, nested dataclasses) and raises
one `SpecError` naming the dotted path of the first value of the wrong type::

    images[0].platforms: 'linux/amd64' is not a tuple of strings; did you mean ('linux/amd64',)?

It knows nothing of the spec: the spec's own rules live in `pipeline.validate`, which also names
its `Literal` types through `nouns` (`Literal["error", "warning", "off"]` -> "a level"). Pure.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

from pipeline.errors import SpecError


class Text:
    """A suggestion shown as-is (not quoted): `did you mean format='short'?`."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _hint(close: object) -> str:
    if close is None:
        return ""
    if isinstance(close, str):
        return f"; did you mean '{close}'?"
    return f"; did you mean {_short(close)}?"


def _short(value: object) -> str:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return f"{type(value).__name__}(...)"
    if isinstance(value, tuple) and any(dataclasses.is_dataclass(v) for v in value):
        inner = ", ".join(_short(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def fail(path: str, value: object, what: str, close: object = None) -> SpecError:
    """`<path>: <value> is not <what>[; did you mean '<close>'?]`."""
    return SpecError(f"{path}: {_short(value)} is not {what}{_hint(close)}")


def close_match(value: object, choices: Iterable[str]) -> str | None:
    if not isinstance(value, str):
        return None
    options = list(choices)
    for option in options:
        if option.lower() == value.lower().strip():
            return option
    found = difflib.get_close_matches(value, options, n=1, cutoff=0.6)
    return found[0] if found else None


def unknown(path: str, value: object, noun: str, choices: Sequence[str]) -> SpecError:
    close = close_match(value, choices)
    if close is not None:
        return fail(path, value, noun, close)
    return fail(path, value, f"{noun} ({', '.join(choices)})")


# --- types -------------------------------------------------------------------------------------


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _article(word: str) -> str:
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"


_SCALARS: dict[Any, str] = {
    str: "a string",
    bool: "True or False",
    int: "an integer",
    float: "a number",
}


@dataclass(frozen=True)
class Checker:
    """Checks dataclass values against their annotations; `literal_nouns` names `Literal` types
    (`Literal["error", "warning", "off"]` -> "a level") and `union_noun` a union of dataclasses
    ("tag rules") in messages."""

    literal_nouns: Mapping[frozenset[object], str] = field(default_factory=dict)
    union_noun: str = "values"

    def _rules_text(self, options: Sequence[Any]) -> str:
        return f"{self.union_noun} (" + ", ".join(f"{a.__name__}(...)" for a in options) + ")"

    def _describe(self, hint: Any) -> str:
        origin, args = get_origin(hint), get_args(hint)
        if hint in _SCALARS:
            text = _SCALARS[hint]
        elif origin is Literal:
            noun = self.literal_nouns.get(frozenset(args))
            listed = ", ".join(repr(a) for a in args)
            text = f"{noun} ({listed})" if noun else f"one of {listed}"
        elif origin in (Union, types.UnionType):
            options = [a for a in args if a is not type(None)]
            if len(options) > 1 and all(dataclasses.is_dataclass(a) for a in options):
                text = "one of the " + self._rules_text(options)
            else:
                text = " or ".join(self._describe(a) for a in options)
            text += " or None" if len(options) < len(args) else ""
        elif origin is tuple:
            text = f"a tuple of {self._plural(args[0])}"
        elif origin is Mapping:
            text = f"a mapping of {self._plural(args[0])} to {self._plural(args[1])}"
        elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
            text = _article(f"{hint.__name__}(...)")
        else:
            text = str(hint)
        return text

    def _plural(self, hint: Any) -> str:
        origin, args = get_origin(hint), get_args(hint)
        if hint is str:
            return "strings"
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return f"{hint.__name__}(...) values"
        if origin in (Union, types.UnionType) and all(dataclasses.is_dataclass(a) for a in args):
            return self._rules_text(args)
        if origin is Literal:
            return "values among " + ", ".join(repr(a) for a in args)
        if origin is tuple:
            return f"tuples of {self._plural(args[0])}"
        return self._describe(hint)

    def _check_literal(self, value: Any, args: tuple[Any, ...], path: str) -> None:
        if isinstance(value, str) and value in args:
            return
        choices = [str(a) for a in args]
        noun = self.literal_nouns.get(frozenset(args))
        if isinstance(value, bool) and str(value).lower() in choices:
            raise fail(path, value, noun or "one of " + ", ".join(choices), str(value).lower())
        if noun:
            raise unknown(path, value, noun, choices)
        raise fail(path, value, "one of " + ", ".join(map(repr, args)), close_match(value, choices))

    def _check_union(self, value: Any, hint: Any, args: tuple[Any, ...], path: str) -> None:
        options = [a for a in args if a is not type(None)]
        if value is None and len(options) < len(args):
            return
        if len(options) == 1 and value is not None:
            option = options[0]
            is_class = isinstance(option, type) and dataclasses.is_dataclass(option)
            if is_class and not isinstance(value, option):
                raise fail(path, value, self._describe(hint))
            self._check_type(value, option, path)
            return
        for option in options:
            if isinstance(option, type) and isinstance(value, option):
                self._check_type(value, option, path)
                return
        raise fail(path, value, self._describe(hint))

    def _check_tuple(self, value: Any, hint: Any, args: tuple[Any, ...], path: str) -> None:
        if not isinstance(value, tuple):
            close: object = None
            if isinstance(value, list):
                close = tuple(value)
            elif not isinstance(value, (Mapping, set, frozenset)):
                close = (value,)
            raise fail(path, value, self._describe(hint), close)
        for index, item in enumerate(value):
            self._check_type(item, args[0], f"{path}[{index}]")

    def _check_mapping(self, value: Any, hint: Any, args: tuple[Any, ...], path: str) -> None:
        if not isinstance(value, Mapping):
            raise fail(path, value, self._describe(hint))
        for key, item in value.items():
            self._check_type(key, args[0], f"{path}[{_short(key)}]")
            self._check_type(item, args[1], f"{path}[{_short(key)}]")

    def _check_scalar(self, value: Any, hint: Any, path: str) -> None:
        close: object = None
        if hint is bool:
            if isinstance(value, bool):
                return
            close = {"true": True, "false": False}.get(str(value).lower())
        elif hint is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return
            close = int(value) if isinstance(value, str) and value.strip().isdigit() else None
        elif hint is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return
        elif isinstance(value, str):
            return
        elif isinstance(value, (int, float)):
            close = str(value)
        raise fail(path, value, _SCALARS[hint], close)

    def _check_type(self, value: Any, hint: Any, path: str) -> None:
        origin, args = get_origin(hint), get_args(hint)
        if origin is Literal:
            self._check_literal(value, args, path)
        elif origin in (Union, types.UnionType):
            self._check_union(value, hint, args, path)
        elif origin is tuple:
            self._check_tuple(value, hint, args, path)
        elif origin is Mapping:
            self._check_mapping(value, hint, args, path)
        elif hint in _SCALARS:
            self._check_scalar(value, hint, path)
        elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
            if not isinstance(value, hint):
                raise fail(path, value, self._describe(hint))
            self.check_fields(value, path)
        elif hint is not Any:
            raise AssertionError(f"validate: no type check for {hint!r} at {path}")

    def check_fields(self, obj: Any, path: str = "") -> None:
        """Every field of the dataclass `obj` (recursively) has the type its annotation names."""
        for name, hint in _hints(type(obj)).items():
            self._check_type(getattr(obj, name), hint, f"{path}.{name}" if path else name)

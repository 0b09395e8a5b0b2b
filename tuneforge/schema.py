"""Small schemas for the JSON files tuneforge reads, and one reader that checks them.

A schema is built from a few pieces: a Python type (``str``, ``int``, ``float``, ``bool``,
``list``, ``dict``; ``float`` accepts integers, ``int`` refuses booleans), :class:`Obj` (an
object with required and optional fields), :class:`ListOf`, :class:`OneOf` and :data:`ANY`.
:func:`read_json` reads a file, parses it and checks it, and turns every problem into one
line that names the file and the field, raised as the error type the caller gives.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import stat
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.errors import TuneforgeError

MAX_JSON_BYTES = 64 * 1024 * 1024  # no JSON tuneforge writes comes near; a bigger one is hostile
MAX_DEPTH = 64  # nesting beyond this is refused before Python's recursion limit is reached


class SchemaError(ValueError):
    """A value that does not fit its schema; ``field`` is its dotted path ("" at the top)."""

    def __init__(self, field_path: str, problem: str) -> None:
        super().__init__(f"field {field_path or '(top level)'}: {problem}")
        self.field = field_path
        self.problem = problem


@dataclass(frozen=True)
class Obj:
    """A JSON object: ``required`` fields must be there, ``optional`` ones may; other keys are
    accepted (newer writers may add some) unless ``closed``."""

    required: dict[str, Any] = field(default_factory=dict)
    optional: dict[str, Any] = field(default_factory=dict)
    closed: bool = False


@dataclass(frozen=True)
class ListOf:
    """A JSON array whose items all fit ``item``, with at most ``max_items`` of them."""

    item: Any
    max_items: int | None = None
    min_items: int = 0


@dataclass(frozen=True)
class MapOf:
    """A JSON object used as a map: any keys, every value fits ``value``, at most
    ``max_items`` entries."""

    value: Any
    max_items: int | None = None


@dataclass(frozen=True)
class OneOf:
    """A value that fits any one of ``options`` (``None`` among them allows null)."""

    options: tuple[Any, ...]


@dataclass(frozen=True)
class Range:
    """A number of ``kind`` (int or float) within ``low``..``high`` (inclusive; None: open)."""

    kind: type
    low: float | None = None
    high: float | None = None


ANY = object()  # any JSON value
_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def _describe(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, dict | list) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _fits_type(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def validate(value: Any, schema: Any, where: str = "", depth: int = 0) -> None:
    """Raise :class:`SchemaError` naming the first field of ``value`` that does not fit."""
    if depth > MAX_DEPTH:
        raise SchemaError(where, f"nested deeper than {MAX_DEPTH} levels")
    if schema is ANY:
        return
    if schema is None:
        if value is not None:
            raise SchemaError(where, f"must be null, got {_describe(value)}")
        return
    if isinstance(schema, OneOf):
        problems: list[SchemaError] = []
        for option in schema.options:
            try:
                validate(value, option, where, depth)
                return
            except SchemaError as error:
                problems.append(error)
        # An option that got inside the value (an object of the wrong content) says most.
        deeper = [error for error in problems if error.field != where]
        if deeper:
            raise deeper[0]
        raise SchemaError(where, " or ".join(dict.fromkeys(e.problem for e in problems)))
    if isinstance(schema, Range):
        validate(value, schema.kind, where, depth)
        if isinstance(value, float) and not math.isfinite(value):
            raise SchemaError(where, f"must be a finite number, got {value}")
        if schema.low is not None and value < schema.low:
            raise SchemaError(where, f"must be >= {schema.low:g}, got {_describe(value)}")
        if schema.high is not None and value > schema.high:
            raise SchemaError(where, f"must be <= {schema.high:g}, got {_describe(value)}")
        return
    if isinstance(schema, Obj):
        if not isinstance(value, dict):
            raise SchemaError(where, f"must be an object, got {_describe(value)}")
        for name, item in schema.required.items():
            if name not in value:
                raise SchemaError(_join(where, name), "is missing")
            validate(value[name], item, _join(where, name), depth + 1)
        for name, item in schema.optional.items():
            if name in value:
                validate(value[name], item, _join(where, name), depth + 1)
        if schema.closed:
            unknown = sorted(set(value) - set(schema.required) - set(schema.optional))
            if unknown:
                raise SchemaError(_join(where, unknown[0]), "is not a known field")
        return
    if isinstance(schema, MapOf):
        if not isinstance(value, dict):
            raise SchemaError(where, f"must be an object, got {_describe(value)}")
        if schema.max_items is not None and len(value) > schema.max_items:
            raise SchemaError(where, f"has {len(value):,} entries, more than {schema.max_items:,}")
        for name, item in value.items():
            validate(item, schema.value, _join(where, str(name)), depth + 1)
        return
    if isinstance(schema, ListOf):
        if not isinstance(value, list):
            raise SchemaError(where, f"must be an array, got {_describe(value)}")
        if schema.max_items is not None and len(value) > schema.max_items:
            raise SchemaError(where, f"has {len(value):,} items, more than {schema.max_items:,}")
        if len(value) < schema.min_items:
            raise SchemaError(where, f"has {len(value)} items, fewer than {schema.min_items}")
        for index, item in enumerate(value):
            validate(item, schema.item, f"{where}[{index}]", depth + 1)
        return
    if isinstance(schema, type):
        if not _fits_type(value, schema):
            raise SchemaError(where, f"must be {_TYPE_NAMES[schema]}, got {_describe(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SchemaError(where, f"must be a finite number, got {value}")
        return
    raise TypeError(f"not a schema: {schema!r}")  # a bug in tuneforge, not in the file


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def dataclass_schema(config_type: type) -> Obj:
    """An object whose fields, all optional, have the types ``config_type`` declares."""
    hints = typing.get_type_hints(config_type)
    fields_ = dataclasses.fields(config_type)
    return Obj(optional={f.name: _type_schema(hints[f.name]) for f in fields_})


def _type_schema(hint: Any) -> Any:
    """The schema of a config field from its annotation (int, float, str | None, dict...)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return OneOf(tuple(_type_schema(arg) for arg in typing.get_args(hint)))
    if hint is type(None):
        return None
    if hint in (int, float, str, bool):
        return hint
    if hint is dict or origin is dict:
        return dict
    if hint in (list, tuple) or origin in (list, tuple):
        return list
    return ANY


def load_json_text(path: Path, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The parsed JSON of a regular file of at most ``max_bytes``; raises ``OSError`` (it
    cannot be read, or is no regular file) or ``ValueError`` (too large, not UTF-8 JSON)."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(f"{path} is not a regular file")
    if info.st_size > max_bytes:
        raise ValueError(f"{info.st_size:,} bytes, more than {max_bytes:,}")
    with open(path, "rb") as file:
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"more than {max_bytes:,} bytes")
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError as error:
        raise ValueError("nested too deeply") from error


def read_json(
    path: str | Path,
    schema: Any,
    *,
    error: type[TuneforgeError] = TuneforgeError,
    hint: str = "",
    max_bytes: int = MAX_JSON_BYTES,
) -> Any:
    """Read, parse and check the JSON file at ``path``.

    Raises:
        ``error`` (a TuneforgeError type): one line naming the file, and the field when the
        content is valid JSON of the wrong shape, followed by ``hint`` (what to do).
    """
    path = Path(path)
    suffix = f"; {hint}" if hint else ""
    try:
        document = load_json_text(path, max_bytes=max_bytes)
    except OSError as problem:
        reason = problem.strerror or str(problem)
        raise error(f"cannot read {path}: {reason}{suffix}") from None
    except ValueError as problem:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        first_line = str(problem).splitlines()[0] if str(problem) else type(problem).__name__
        raise error(f"{path} is not valid JSON ({first_line}){suffix}") from None
    try:
        validate(document, schema)
    except SchemaError as problem:
        raise error(f"{path}: {problem}{suffix}") from None
    return document

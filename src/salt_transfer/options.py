"""One adapter between option dataclasses and everything that sets them: flags, JSON, config.

Every tunable of a phase is a field of a frozen dataclass declared with `opt(default, help=...)`;
the default and the help text live there and nowhere else. From one dataclass this module builds

* the command-line flags (`add_arguments`: `--min-count`, booleans as `--x/--no-x`, choices),
* the instance from parsed flags (`from_args`, optionally on top of a JSON file of values),
* the instance from a mapping of strings or values (`from_mapping`: `--option key=value` of `fit`,
  method options in the workflow config), with unknown keys and bad types named,
* the flags back from a mapping (`to_flags`: how `rules/common.smk` passes config sections on).

Pure standard library: the command line builds its parser from these without importing torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import InputError

_MISSING = dataclasses.MISSING


def opt(default: Any = _MISSING, *, help: str, choices: Iterable[Any] | None = None, minimum=None) -> Any:
    """A dataclass field with its help text (and allowed values / lower bound, checked on parsing)."""
    meta = {"help": help}
    if choices is not None:
        meta["choices"] = tuple(choices)
    if minimum is not None:
        meta["minimum"] = minimum
    return dataclasses.field(default=default, metadata=meta)


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _base_type(hint: Any) -> tuple[type, bool]:
    """(scalar type, whether None is allowed) of a field annotation such as `int | None`."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], True
    return hint, False


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _parse_bool(text: str) -> bool:
    low = str(text).strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise ValueError(text)


def convert(value: Any, hint: Any, label: str, field: dataclasses.Field | None = None) -> Any:
    """`value` (a string from a flag or a typed value from JSON/YAML) as the field's type; InputError
    naming `label` when it does not fit or is outside the allowed values."""
    kind, optional = _base_type(hint)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "")):
        if optional:
            return None
        raise InputError(f"{label}: a value is required")
    try:
        if kind is bool:
            out = value if isinstance(value, bool) else _parse_bool(value)
        elif kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            out = int(value)
        elif kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            out = float(value)
        elif kind is str:
            if not isinstance(value, str):
                raise ValueError(value)
            out = value
        else:  # pragma: no cover - only scalar options are declared
            out = kind(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{label}={value!r}: expected {kind.__name__}") from exc
    meta = field.metadata if field is not None else {}
    if "choices" in meta and out not in meta["choices"]:
        raise InputError(f"{label}={out!r}: choose one of {', '.join(map(str, meta['choices']))}")
    if "minimum" in meta and out < meta["minimum"]:
        raise InputError(f"{label}={out!r}: must be at least {meta['minimum']}")
    return out


def check_fields(instance) -> None:
    """Allowed values and lower bounds of every field of an option dataclass instance (called from
    the classes' __post_init__, so an instance built directly is checked like one parsed from flags)."""
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        if value is None:
            continue
        if "choices" in f.metadata and value not in f.metadata["choices"]:
            raise InputError(
                f"{flag_name(f.name)} {value!r}: choose one of {', '.join(map(str, f.metadata['choices']))}"
            )
        if "minimum" in f.metadata and not isinstance(value, bool) and value < f.metadata["minimum"]:
            raise InputError(f"{flag_name(f.name)} {value!r}: must be at least {f.metadata['minimum']}")


def _help(f: dataclasses.Field) -> str:
    text = f.metadata.get("help", "")
    if f.default is not _MISSING:
        return f"{text} (default: {f.default})"
    return f"{text} (required)"


def add_arguments(parser, cls, *, exclude: Iterable[str] = (), required_from_json: bool = False) -> None:
    """One flag per field of `cls`, with the field's help; parsed values default to None so that
    `from_args` can tell "not given" from "given" (the dataclass keeps every default)."""
    hints = _hints(cls)
    skip = set(exclude)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind, _ = _base_type(hints[f.name])
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": _help(f)}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = f.name.upper() if "choices" not in f.metadata else None
            kwargs["type"] = str  # converted (and range-checked) in from_args, with a one-line error
            if "choices" in f.metadata:
                kwargs["choices"] = [str(c) for c in f.metadata["choices"]]
                kwargs.pop("metavar")
        parser.add_argument(flag_name(f.name), **kwargs)


def from_mapping(cls, values: Mapping[str, Any], *, label: str = "option", flags: bool = False) -> Any:
    """An instance of `cls` from a mapping of field names (or `--flag` names when `flags`) to values;
    unknown keys, bad types and missing required fields are InputErrors naming them."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    name_of = (lambda k: flag_name(k)) if flags else (lambda k: k)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        known = ", ".join(name_of(k) for k in fields)
        raise InputError(f"{label}: unknown {', '.join(map(name_of, unknown))}; known: {known}")
    converted = {
        k: convert(v, hints[k], f"{label} {name_of(k)}" if flags else f"{label} {k}", fields[k])
        for k, v in values.items()
    }
    missing = [
        name_of(f.name)
        for f in fields.values()
        if f.name not in converted and f.default is _MISSING and f.default_factory is _MISSING
    ]
    if missing:
        raise InputError(f"{label}: missing required {', '.join(missing)}")
    try:
        return cls(**converted)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{label}: {exc}") from exc


def from_args(cls, args: argparse.Namespace, *, json_file: str | None = None, **overrides) -> Any:
    """An instance of `cls` from parsed flags (None: not given), on top of the values of a JSON file."""
    values: dict[str, Any] = {}
    if json_file:
        path = Path(json_file)
        if not path.is_file():
            raise InputError(f"--args-json {path}: no such file")
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"--args-json {path}: not JSON ({exc})") from exc
        if not isinstance(loaded, dict):
            raise InputError(f"--args-json {path}: expected a JSON object")
        unknown = sorted(set(loaded) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise InputError(f"--args-json {path}: unknown keys {unknown}")
        values.update(loaded)
    for f in dataclasses.fields(cls):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    values.update({k: v for k, v in overrides.items() if v is not None})
    return from_mapping(cls, values, label="argument", flags=True)


def to_flags(cls, values: Mapping[str, Any]) -> str:
    """Command-line flags for the given field values (checked against `cls` first), sorted by name."""
    instance_fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - instance_fields)
    if unknown:
        raise InputError(f"unknown option(s) {unknown} for {cls.__name__}")
    out = []
    for key, value in sorted(values.items()):
        if value is None:
            continue
        if isinstance(value, bool):
            out.append(flag_name(key) if value else "--no-" + key.replace("_", "-"))
        else:
            out.append(f"{flag_name(key)} {value}")
    return " ".join(out)


def defaults(cls) -> dict[str, Any]:
    """Field name -> default, for the fields that have one (the schema test compares with these)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not _MISSING:
            out[f.name] = f.default
    return out

"""The launch config as a file: read within its bounds, and its errors worded as the user reads them.

read_yaml stops at 1 MiB, 50 YAML aliases and 64 levels, before anything expands. The checks of
commands/config_types.py raise bad(message); key_path_errors gives each error as its key path and that
message, e.g. `severities.sev1.ack_within: '5 minutes' is not a duration like 5m`, so no pydantic
wording reaches the user.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError, ValidationInfo
from pydantic_core import ErrorDetails, PydanticCustomError

MAX_FILE_BYTES = 1024 * 1024
MAX_ALIASES = 50  # `*name` references; a few dozen make a billion-laughs file expand to gigabytes
MAX_DEPTH = 64  # nested mappings and lists; a config needs a handful, and PyYAML recurses per level

# Values are shown in messages as repr() shows them, clipped: a value may be a 1 MiB string.
_repr = reprlib.Repr()
_repr.maxstring, _repr.maxother, _repr.maxlong, _repr.maxlevel = 100, 100, 40, 3
shown = _repr.repr


class ConfigError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def read_yaml(path: str) -> Any:
    """The file's YAML as plain data ({} when empty); raises ConfigError when it cannot be that."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)  # never more than the limit, whatever the file is
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read ({exc.strerror})"]) from exc
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError([f"{path}: is over 1 MiB (a config is at most 1 MiB)"])
    try:
        raw = yaml.load(data.decode("utf-8"), Loader=_BoundedLoader)  # a SafeLoader, counting aliases
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: is not UTF-8 text"]) from exc
    except _OverLimit as exc:
        raise ConfigError([f"{path}: {exc}"]) from exc
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: e.g. an integer of 5,000 digits
        raise ConfigError([f"{path}: not valid YAML ({exc})"]) from exc
    return raw if raw is not None else {}


class _OverLimit(yaml.YAMLError):
    pass


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that stops at the 51st alias or the 65th level while composing, before anything expands."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        line = self.peek_event().start_mark.line + 1
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _OverLimit(f"has more than {MAX_ALIASES} YAML aliases (*name); "
                                 f"the one at line {line} is over")
        if self.depth >= MAX_DEPTH:
            raise _OverLimit(f"is nested more than {MAX_DEPTH} levels deep (at line {line})")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def bad(message: str) -> PydanticCustomError:
    """The error a check raises: its message is what the user reads, after the key path."""
    return PydanticCustomError("config", message)  # no context: braces in the message stay as they are


def must(test: Callable[[Any], object], what: str) -> Callable[[Any], Any]:
    """A check passing the value on when test holds, else `<value> is not <what>`."""
    def check(value: Any) -> Any:
        if not test(value):
            raise bad(f"{shown(value)} is not {what}")
        return value
    return check


def key_path_errors(exc: ValidationError, root: type[BaseModel]) -> list[str]:
    """Each error of validating root as `key.path[0].key: message`, in the order pydantic found them."""
    return [f"{_key_path(e['loc'])}: {_message(e, root)}" for e in exc.errors(include_url=False)]


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else part
    return path or "(top level)"


def _message(error: ErrorDetails, root: type[BaseModel]) -> str:
    kind, value = error["type"], error.get("input")
    if kind == "config":  # raised by bad()
        return error["msg"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return f"unknown key (expected one of {', '.join(_keys_at(root, error['loc'][:-1]))})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{shown(value)} is not a mapping"
    if kind in ("list_type", "tuple_type"):
        return f"{shown(value)} is not a list"
    return f"{shown(value)} is not valid here"  # every leaf has its own message; this is a safety net


def _keys_at(section: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys of the section at loc below section (list indices skipped), for the unknown-key message."""
    for part in loc:
        if isinstance(part, str):
            field = next(f for name, f in section.model_fields.items() if (f.alias or name) == part)
            section = _section_in(field.annotation) or section
    return sorted(f.alias or name for name, f in section.model_fields.items())


def _section_in(annotation: Any) -> type[BaseModel] | None:
    """The section model inside an annotation such as `Probe`, `tuple[Probe, ...]` or `X | None`."""
    if get_origin(annotation) is None and isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((s for s in map(_section_in, get_args(annotation)) if s is not None), None)


def first_use(name: str, info: ValidationInfo, seen_key: str, what: str) -> str:
    """`name`, refused if another `what` of this file took it (parse_config gives each validation fresh sets)."""
    seen = info.context.setdefault(seen_key, set()) if info.context is not None else set()
    if name in seen:
        raise bad(f"{shown(name)} is used by another {what}")
    seen.add(name)
    return name

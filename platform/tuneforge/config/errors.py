"""``ConfigError`` and the one explainer of pydantic errors: ``file:line: dotted.field: what is wrong``.

Job files (``tuneforge.config.loader``) and sweep files (``tuneforge.tune.config``) both validate with
pydantic and report its errors through ``config_error``: the first problem, at its line in the YAML (or
``<override>`` when a ``key=value`` override set it), with a did-you-mean for typos of keys and of the
tags of discriminated unions (``method.name``, ``search.scheduler.name``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TypeGuard, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

OVERRIDE_SOURCE = "<override>"

KeyPath = tuple[str | int, ...]  # a location in the config: mapping keys and list indices

GENERIC_MESSAGES: dict[str, str] = {
    "missing": "required key is missing",
    "model_type": "expected a mapping of keys",
    "model_attributes_type": "expected a mapping of keys",
    "dict_type": "expected a mapping of keys",
}
"""Pydantic error types whose own message would confuse a YAML user -> the message to show instead."""


class ConfigError(ValueError):
    """A config problem, rendered by str() as one self-explanatory line: `file:line: field: message`."""

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None, field: str | None = None
    ) -> None:
        # Only `message` goes to args, so the exception pickles (Ray ships it back from workers);
        # the other attributes travel in __dict__.
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field

    def __str__(self) -> str:
        where = self.file if self.line is None or self.file is None else f"{self.file}:{self.line}"
        return ": ".join(part for part in (where, self.field, self.message) if part)


def config_error(
    exc: ValidationError,
    model: type[BaseModel],
    *,
    source: str | None,
    lines: dict[KeyPath, int],
    overridden: list[KeyPath],
    prefix: KeyPath = (),
) -> ConfigError:
    """The ConfigError for a failed ``model.model_validate``: its first problem, in the file or an override.

    ``prefix`` is where the model's data sits in the file (``("search",)`` for a sweep's search section);
    ``lines`` (from ``read_yaml``) and ``overridden`` (override key paths) are keyed from the file's root.
    More problems elsewhere are counted, not listed: fixing one at a time keeps each message one line.
    """
    explained = [explain(error, model, prefix) for error in exc.errors(include_url=False)]
    path, message = explained[0]
    others = len({other for other, _ in explained} - {path})
    if others:
        message += f" (and {others} more problem{'s' if others > 1 else ''})"
    field = dotted(path) or None
    if any(overlaps(path, key) for key in overridden):
        return ConfigError(message, file=OVERRIDE_SOURCE, field=field)
    return ConfigError(message, file=source, line=line_of(path, lines), field=field)


def explain(
    error: ErrorDetails, model: type[BaseModel] | None = None, prefix: KeyPath = ()
) -> tuple[KeyPath, str]:
    """Turn one pydantic error on ``model`` (default: JobConfig) into (config path, human message)."""
    if model is None:
        from tuneforge.config.schema import JobConfig  # the schema imports nothing from here

        model = JobConfig
    path, owner, variant = _locate(error["loc"], model)
    path = (*prefix, *path)
    kind = error["type"]
    if kind == "extra_forbidden" and owner is not None:
        # `method.r` is only unknown to the chosen method, so name it.
        scope = f" for {path[-2]} {variant!r}" if variant is not None else ""
        return path, unknown_key_message(str(path[-1]), list(owner.model_fields), scope)
    if kind in ("union_tag_invalid", "union_tag_not_found") and owner is not None:
        field = owner.model_fields[str(path[-1])]
        tags = list(tagged_members(field))
        path = (*path, str(field.discriminator))
        if kind == "union_tag_not_found":
            return path, f"required key is missing; expected one of: {', '.join(tags)}"
        tag = error["ctx"]["tag"]
        close = difflib.get_close_matches(tag, tags, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return path, f"unknown {path[-2]} {tag!r}; {hint}expected one of: {', '.join(tags)}"
    if kind == "value_error":
        return path, str(error["ctx"]["error"])
    message = GENERIC_MESSAGES.get(kind) or error["msg"][:1].lower() + error["msg"][1:]
    value = error.get("input")
    if kind != "missing" and not isinstance(value, dict | list):
        message += f" (got {value!r})"
    return path, message


def unknown_key_message(key: str, allowed: list[str], scope: str = "") -> str:
    """Suggest the valid key a typo meant: the one key it starts (``grace``), else the closest one.

    With no likely match, list the valid keys.
    """
    started = [name for name in allowed if name.startswith(key)]
    if key and len(started) == 1:
        return f"unknown key{scope}; did you mean {started[0]!r}?"
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return f"unknown key{scope}; did you mean {close[0]!r}?"
    return f"unknown key{scope}; valid keys: {', '.join(allowed)}"


def _locate(
    loc: tuple[str | int, ...], model: type[BaseModel]
) -> tuple[KeyPath, type[BaseModel] | None, str | None]:
    """Map a pydantic error location to (config path, model owning its last key, that model's union tag).

    Pydantic inserts the tag of a discriminated union (`method.lora.r`) and member labels of plain unions
    (`target_modules.list[str]`) into locations; neither is a key the user wrote, so both are dropped.
    """
    path: list[str | int] = []
    owner: type[BaseModel] | None = None
    variant: str | None = None
    annotation: object = model
    tag: str | None = None  # the union tag under which `annotation` was reached, if any
    segments = list(loc)
    while segments:
        segment = segments.pop(0)
        if is_model(annotation):
            owner, variant = annotation, tag
            path.append(segment)
            field = annotation.model_fields.get(str(segment))
            if field is None:
                break
            annotation, tag = field.annotation, None
            members = tagged_members(field)
            if members and segments and segments[0] in members:
                tag = str(segments.pop(0))
                annotation = members[tag]
        elif isinstance(segment, int) and get_origin(annotation) is list:
            path.append(segment)
            annotation, tag = get_args(annotation)[0], None
        else:
            path.extend(index for index in (segment, *segments) if isinstance(index, int))
            break
    return tuple(path), owner, variant


def tagged_members(field: FieldInfo) -> dict[str, type[BaseModel]]:
    """Members of a discriminated-union field keyed by their tag (`{"full": FullMethod, ...}`); else {}."""
    discriminator = field.discriminator
    if not isinstance(discriminator, str):
        return {}
    return {
        tag: member
        for member in get_args(field.annotation)
        for tag in get_args(member.model_fields[discriminator].annotation)
    }


def is_model(annotation: object) -> TypeGuard[type[BaseModel]]:
    """True for a pydantic model class (a nested config section), as a type guard."""
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def overlaps(path: KeyPath, key: KeyPath) -> bool:
    """True when an error at `path` concerns data set by override `key` (one contains the other)."""
    shorter = min(len(path), len(key))
    return path[:shorter] == key[:shorter]


def line_of(path: KeyPath, lines: Mapping[KeyPath, int]) -> int | None:
    """Line of the deepest part of `path` present in the file (a missing key points at its section)."""
    for depth in range(len(path), 0, -1):
        if path[:depth] in lines:
            return lines[path[:depth]]
    return None


def dotted(path: KeyPath) -> str:
    """Render ('data', 'train_files', 0, 'path') as `data.train_files[0].path`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


__all__ = [
    "GENERIC_MESSAGES",
    "OVERRIDE_SOURCE",
    "ConfigError",
    "KeyPath",
    "config_error",
    "dotted",
    "explain",
    "is_model",
    "line_of",
    "overlaps",
    "tagged_members",
    "unknown_key_message",
]

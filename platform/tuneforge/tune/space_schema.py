"""Which job keys a sweep can search: the JobConfig schema walked into dotted keys, and key checks.

Unknown keys get the loader's did-you-mean, so sweep errors read exactly like job errors.
"""

from __future__ import annotations

import difflib
import types
from functools import cache
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from tuneforge.config import JobConfig
from tuneforge.config.errors import tagged_members, unknown_key_message
from tuneforge.tune.space_types import DOMAIN_KINDS


@cache
def _schema() -> dict[tuple[str, ...], bool]:
    """Every addressable job key -> whether it is a section (has keys of its own)."""
    out: dict[tuple[str, ...], bool] = {}
    _walk_schema(JobConfig, (), out)
    return out


def _walk_schema(model: type[BaseModel], prefix: tuple[str, ...], out: dict[tuple[str, ...], bool]) -> None:
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        members = tagged_members(info)
        section = _section_model(info.annotation)
        out[path] = bool(members) or section is not None
        for member in members.values() if members else ([section] if section else []):
            _walk_schema(member, path, out)


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The model behind a field that is a section, also when optional (``early_stopping: X | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _section_model(args[0])
    return None


def searchable_keys() -> list[str]:
    """Every dotted job key a sweep can search (sections too: ``model.tiny`` sets the whole section)."""
    return sorted(".".join(path) for path in _schema())


def method_members() -> dict[str, type[BaseModel]]:
    """The job's methods by name (``{"lora": LoraMethod, ...}``)."""
    return tagged_members(JobConfig.model_fields["method"])


@cache
def _section_fields() -> dict[str, list[tuple[str, ...]]]:
    """Field name -> the section keys that have it (``lr`` -> [trainer.lr]); method knobs excluded."""
    out: dict[str, list[tuple[str, ...]]] = {}
    for p in _schema():
        if len(p) == 2 and p[0] != "method":
            out.setdefault(p[1], []).append(p)
    return out


def expand_shorthand(parts: tuple[str, ...]) -> tuple[str, ...]:
    """A bare field name that exists in exactly one section stands for it: ``lr`` -> ``trainer.lr``.

    Why: the way people write a search space (the issue's own example, Ray Tune's docs) is ``lr: ...``,
    not ``trainer.lr: ...``; an unambiguous name is accepted, an ambiguous or unknown one is left for
    ``key_problem`` to report with the closest valid keys.
    """
    if len(parts) != 1 or parts in _schema():
        return parts
    owners = _section_fields().get(parts[0], [])
    return owners[0] if len(owners) == 1 else parts


def key_problem(parts: tuple[str, ...]) -> str | None:
    """Why ``parts`` is not a job key (with the closest valid key), or None if it is one."""
    schema = _schema()
    if parts in schema:
        return None
    for depth in range(len(parts) - 1, 0, -1):
        prefix = parts[:depth]
        if prefix in schema and not schema[prefix]:
            return (
                f"{'.'.join(prefix)} is a single value, not a section; give it a value or one domain "
                f"({', '.join(DOMAIN_KINDS)})"
            )
        if prefix in schema:
            siblings = [p[-1] for p in schema if len(p) == depth + 1 and p[:depth] == prefix]
            close = difflib.get_close_matches(parts[depth], siblings, n=1)
            if close:
                return f"unknown key; did you mean {'.'.join((*prefix, close[0]))!r}?"
            break
    close = difflib.get_close_matches(".".join(parts), [".".join(p) for p in schema], n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    if len(parts) == 1:  # a misspelt shorthand (`lrr`): suggest the section field it is closest to
        fields = _section_fields()
        near = difflib.get_close_matches(parts[0], list(fields), n=1)
        if near:
            return f"unknown key; did you mean {'.'.join(fields[near[0]][0])!r}?"
    return f"unknown key; valid sections: {', '.join(p[0] for p in schema if len(p) == 1)}"


__all__ = ["expand_shorthand", "key_problem", "method_members", "searchable_keys", "unknown_key_message"]

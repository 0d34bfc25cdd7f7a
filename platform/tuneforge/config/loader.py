"""Load a JobConfig from YAML plus `key.sub=value` overrides, and turn every failure into one clear line.

Users see these errors on the command line, so a problem is reported as `file:line: dotted.field: what is
wrong` (with a did-you-mean for typos) instead of a pydantic dump.

The building blocks (``read_yaml``, ``apply_override``, ``validate``, ``explain``, ``line_of``, ...) are
public so that other loaders (``tuneforge.tune.config`` for sweep files) report problems the same way.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from tuneforge.config.schema import JobConfig

OVERRIDE_SOURCE = "<override>"

KeyPath = tuple[str | int, ...]  # a location in the config: mapping keys and list indices

_REMOTE_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
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


class Loader(yaml.SafeLoader):
    """SafeLoader that also reads `3e-4` and `1e5` as floats (YAML 1.1 wants a dot and a signed exponent)."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> JobConfig:
    """Read a YAML job spec, apply `dotted.key=value` overrides, validate, and make local paths absolute."""
    config_path = Path(path)
    raw, lines = read_yaml(config_path)
    overridden = [apply_override(raw, text) for text in overrides]
    cfg = validate(raw, source=str(path), lines=lines, overridden=overridden)
    resolve_paths(cfg, config_path.parent)
    return cfg


def config_from_dict(data: dict[str, Any]) -> JobConfig:
    """Re-validate a config that travelled as plain data (e.g. to Ray workers)."""
    return validate(data, source=None, lines={}, overridden=[])


def save_config(cfg: JobConfig, path: Path) -> None:
    """Write the resolved config as YAML atomically, so a crash never leaves a half-written file behind.

    Secrets (a password in ``tracking.uri``, ``*_token`` values) are written as ``***``: the file is a
    record of the run, not a way to reconnect (``tuneforge.tracking.redact``).
    """
    from tuneforge.tracking.redact import redact_mapping  # lazy: the tracking package imports mlflow

    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(redact_mapping(cfg.model_dump(mode="json")), sort_keys=False)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(text)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def config_hash(cfg: JobConfig) -> str:
    """Short content hash of the config, stable across processes and key order, to tag runs and artifacts."""
    canonical = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def field_descriptions() -> dict[str, str]:
    """Map dotted field paths (`trainer.lr`, `data.train_files[].path`) to their descriptions, for docs."""
    descriptions: dict[str, str] = {}
    for key, text in _walk_descriptions(JobConfig, ""):
        descriptions.setdefault(key, text)  # first wins: a union's generated selector text beats members'
    return descriptions


def _walk_descriptions(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str]]:
    """Yield (dotted path, description) for every field of `model`, recursing into nested sections."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        yield key, field.description or ""
        members = tagged_members(field)
        if members:
            yield f"{key}.{field.discriminator}", "One of: " + ", ".join(members) + "."
            for member in members.values():
                yield from _walk_descriptions(member, f"{key}.")
        elif _is_model(field.annotation):
            yield from _walk_descriptions(field.annotation, f"{key}.")
        elif get_origin(field.annotation) is list and _is_model(item := get_args(field.annotation)[0]):
            yield from _walk_descriptions(item, f"{key}[].")


def read_yaml(path: Path) -> tuple[dict[str, Any], dict[KeyPath, int]]:
    """Parse the file into plain data plus the 1-based line of every key and list item in it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file: {exc}", file=str(path)) from None
    loader = Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        problem = "; ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError(f"invalid YAML: {problem}", file=str(path), line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=str(path)) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        found = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ConfigError(f"expected a mapping of sections (model, data, ...), found {found}", file=str(path))
    lines: dict[KeyPath, int] = {}
    _record_lines(node, (), lines)
    return data, lines


def _record_lines(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> None:
    """Remember where each key / list item starts, so validation errors can point into the file."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, key_node.value)
            lines[child] = key_node.start_mark.line + 1
            _record_lines(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _record_lines(item, (*path, index), lines)


def apply_override(raw: dict[str, Any], text: str) -> KeyPath:
    """Set one `dotted.key=value` in the raw data (value parsed as YAML) and return the key's path."""
    key, sep, value_text = text.partition("=")
    path = tuple(part.strip() for part in key.split("."))
    if not sep or not all(path):
        raise ConfigError(f"expected dotted.key=value, got {text!r}", file=OVERRIDE_SOURCE)
    field = ".".join(path)
    try:
        value = yaml.load(value_text, Loader=Loader)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"cannot parse value {value_text!r}: {problem}", file=OVERRIDE_SOURCE, field=field
        ) from None
    section = raw
    for depth, part in enumerate(path[:-1]):
        child = section.get(part)
        if child is None:
            child = section[part] = _new_section(path[: depth + 1])
        elif not isinstance(child, dict):
            parent = ".".join(path[: depth + 1])
            raise ConfigError(
                f"{parent} is a {type(child).__name__}, not a section; set it as a whole: {parent}=...",
                file=OVERRIDE_SOURCE,
                field=field,
            )
        section = child
    if len(path) == 2:
        _drop_keys_of_previous_variant(raw, path, value)
    section[path[-1]] = value
    return path


def _new_section(path: KeyPath) -> dict[str, Any]:
    """A section an override creates starts with the default method's name, so `method.r=4` targets it."""
    field = JobConfig.model_fields.get(str(path[0])) if len(path) == 1 else None
    if field is None or not tagged_members(field):
        return {}
    discriminator = str(field.discriminator)
    return {discriminator: getattr(field.get_default(call_default_factory=True), discriminator)}


def _drop_keys_of_previous_variant(raw: dict[str, Any], path: KeyPath, new_tag: Any) -> None:
    """On `method.name=lora`, drop the old method's knobs that the new one does not have."""
    field = JobConfig.model_fields.get(str(path[0]))
    section = raw.get(str(path[0]))
    if field is None or path[1] != field.discriminator or not isinstance(section, dict):
        return
    members = tagged_members(field)
    if new_tag in members and section.get(path[1]) != new_tag:
        for key in [key for key in section if key not in members[new_tag].model_fields]:
            del section[key]


def validate(
    raw: Any, *, source: str | None, lines: dict[KeyPath, int], overridden: list[KeyPath]
) -> JobConfig:
    """Validate raw data; on failure raise a ConfigError for the first problem, in the file or an override."""
    try:
        return JobConfig.model_validate(raw)
    except ValidationError as exc:
        explained = [explain(error) for error in exc.errors(include_url=False)]
        path, message = explained[0]
        others = len({other_path for other_path, _ in explained} - {path})
        if others:
            message += f" (and {others} more problem{'s' if others > 1 else ''})"
        from_override = any(overlaps(path, key) for key in overridden)
        file = OVERRIDE_SOURCE if from_override else source
        line = None if from_override else line_of(path, lines)
        raise ConfigError(message, file=file, line=line, field=dotted(path) or None) from exc


def explain(error: ErrorDetails) -> tuple[KeyPath, str]:
    """Turn one pydantic error into (config path, human message)."""
    path, owner, variant = _locate(error["loc"])
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


def unknown_key_message(key: str, allowed: list[str], scope: str) -> str:
    """Suggest the closest valid key for a typo, or list the valid keys."""
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return f"unknown key{scope}; did you mean {close[0]!r}?"
    return f"unknown key{scope}; valid keys: {', '.join(allowed)}"


def _locate(loc: tuple[str | int, ...]) -> tuple[KeyPath, type[BaseModel] | None, str | None]:
    """Map a pydantic error location to (config path, model owning its last key, that model's union tag).

    Pydantic inserts the tag of a discriminated union (`method.lora.r`) and member labels of plain unions
    (`target_modules.list[str]`) into locations; neither is a key the user wrote, so both are dropped.
    """
    path: list[str | int] = []
    owner: type[BaseModel] | None = None
    variant: str | None = None
    annotation: Any = JobConfig
    tag: str | None = None  # the union tag under which `annotation` was reached, if any
    segments = list(loc)
    while segments:
        segment = segments.pop(0)
        if _is_model(annotation):
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


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def overlaps(path: KeyPath, key: KeyPath) -> bool:
    """True when an error at `path` concerns data set by override `key` (one contains the other)."""
    shorter = min(len(path), len(key))
    return path[:shorter] == key[:shorter]


def line_of(path: KeyPath, lines: dict[KeyPath, int]) -> int | None:
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


def resolve_paths(cfg: JobConfig, config_dir: Path) -> None:
    """Make local paths absolute (data files, ``modes[].from``, model, tokenizer) for workers elsewhere."""
    for spec in (*cfg.data.train_files, *cfg.data.eval_files):
        spec.path = _resolve_path(spec.path, config_dir)
    for mode in cfg.data.modes:
        mode.sources = [_resolve_path(src, config_dir) for src in mode.sources]
    if cfg.model.name_or_path is not None:
        cfg.model.name_or_path = _resolve_path(cfg.model.name_or_path, config_dir)
    if cfg.model.tokenizer is not None:
        cfg.model.tokenizer = _resolve_path(cfg.model.tokenizer, config_dir)


def _resolve_path(value: str, config_dir: Path) -> str:
    """Prefer the cwd, then the config file's directory; a path found in neither stays cwd-relative."""
    if _REMOTE_URI.match(value) or value.startswith("pkg:"):  # pkg:<package>/<file>: models/gguf.py
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    for base in (Path.cwd(), config_dir):
        if (base / path).exists():
            return os.path.abspath(base / path)
    return os.path.abspath(path)

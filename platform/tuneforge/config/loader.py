"""Load a JobConfig from YAML plus `key.sub=value` overrides, and turn every failure into one clear line.

Users see these errors on the command line, so a problem is reported as `file:line: dotted.field: what is
wrong` (with a did-you-mean for typos) instead of a pydantic dump.

The building blocks (``read_yaml``, ``apply_override``, ``parse_value``, ``validate``, ...) are public so
that other loaders (``tuneforge.tune.config`` for sweep files) read files the same way; both explain
pydantic errors with ``tuneforge.config.errors.config_error``.
"""

from __future__ import annotations

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

from tuneforge.config.errors import (
    OVERRIDE_SOURCE,
    ConfigError,
    KeyPath,
    config_error,
    is_model,
    tagged_members,
)
from tuneforge.config.schema import DatasetSpec, JobConfig
from tuneforge.redact import redact_mapping

_REMOTE_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


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
    return resolve_paths(cfg, config_path.parent)


def config_from_dict(data: dict[str, Any]) -> JobConfig:
    """Re-validate a config that travelled as plain data (e.g. to Ray workers)."""
    return validate(data, source=None, lines={}, overridden=[])


def save_config(cfg: JobConfig, path: Path) -> None:
    """Write the resolved config as YAML atomically, so a crash never leaves a half-written file behind.

    Secrets (a password in ``tracking.uri``, ``*_token`` values) are written as ``***``: the file is a
    record of the run, not a way to reconnect (``tuneforge.redact``).
    """
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
        elif is_model(field.annotation):
            yield from _walk_descriptions(field.annotation, f"{key}.")
        elif get_origin(field.annotation) is list and is_model(item := get_args(field.annotation)[0]):
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


def _record_lines(node: yaml.Node | None, path: KeyPath, lines: dict[KeyPath, int]) -> None:
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
    value = parse_value(field, value_text)
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


def parse_value(field: str, text: str) -> Any:
    """An override's value, parsed as YAML (``3e-4`` is a float); a parse error names the field."""
    try:
        return yaml.load(text, Loader=Loader)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        message = f"cannot parse value {text!r}: {problem}"
        raise ConfigError(message, file=OVERRIDE_SOURCE, field=field) from None


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
    raw: object, *, source: str | None, lines: dict[KeyPath, int], overridden: list[KeyPath]
) -> JobConfig:
    """Validate raw data; on failure raise a ConfigError for the first problem, in the file or an override."""
    try:
        return JobConfig.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc, JobConfig, source=source, lines=lines, overridden=overridden) from None


def resolve_paths(cfg: JobConfig, config_dir: Path) -> JobConfig:
    """A copy of ``cfg`` with local paths made absolute (data files, ``modes[].from``, model, tokenizer),
    for workers elsewhere; ``cfg`` itself is frozen and left as it was."""

    def resolve(value: str | None) -> str | None:
        return None if value is None else _resolve_path(value, config_dir)

    def files(specs: list[DatasetSpec]) -> list[DatasetSpec]:
        return [spec.model_copy(update={"path": _resolve_path(spec.path, config_dir)}) for spec in specs]

    modes = [
        mode.model_copy(update={"sources": [_resolve_path(src, config_dir) for src in mode.sources]})
        for mode in cfg.data.modes
    ]
    data = cfg.data.model_copy(
        update={
            "train_files": files(cfg.data.train_files),
            "eval_files": files(cfg.data.eval_files),
            "modes": modes,
        }
    )
    model = cfg.model.model_copy(
        update={"name_or_path": resolve(cfg.model.name_or_path), "tokenizer": resolve(cfg.model.tokenizer)}
    )
    return cfg.model_copy(update={"data": data, "model": model})


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

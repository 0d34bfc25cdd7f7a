"""One trial: its sampled Tune config -> dotted overrides (``resolve_trial_config``) -> a JobConfig.

``apply_overrides`` applies the overrides to the sweep's base job and re-validates it, so every trial
runs a config that the job schema accepts.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuneforge.config import ConfigError, JobConfig
from tuneforge.config.loader import resolve_paths, validate
from tuneforge.tune.mix import match_mix, resolve_mix
from tuneforge.tune.space_schema import key_problem
from tuneforge.tune.space_types import MIX_PREFIX, TRIAL_SOURCE, Locator


def resolve_trial_config(sampled: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's sampled Tune config -> flat dotted overrides, ``method.name`` first.

    Keeps only the chosen branch's knobs (``method[<label>].r`` -> ``method.r``), computes ``rest``
    and normalises ``data.mix.*`` to weights summing to 1, and turns numpy scalars into Python ones.
    Other keys pass through unchanged; ``apply_overrides`` rejects any that are not job keys.
    """
    out: dict[str, Any] = {}
    branch: dict[str, Any] = {}  # the chosen branch's knobs: they win over plain keys
    method = sampled.get("method")
    label_prefix = f"method[{method}]." if isinstance(method, str) else None
    if isinstance(method, Mapping):  # grid layout (or a choice over whole method dicts)
        out["method.name"] = plain(method.get("name"))
        branch = {branch_key(k): plain(v) for k, v in method.items() if k != "name"}
    elif label_prefix and label_prefix + "name" in sampled:
        out["method.name"] = plain(sampled[label_prefix + "name"])
        for key, value in sampled.items():
            if key.startswith(label_prefix) and key != label_prefix + "name":
                branch[branch_key(key[len(label_prefix) :])] = plain(value)
    elif "method" in sampled:
        out["method"] = plain(method)
    shares: dict[str, Any] = {}
    for key, value in sampled.items():
        if key == "method" or key.startswith("method["):
            continue
        if key.startswith(MIX_PREFIX):
            shares[key[len(MIX_PREFIX) :]] = plain(value)
        else:
            out[key] = plain(value)
    out.update(branch)
    if shares:
        out.update({MIX_PREFIX + name: weight for name, weight in resolve_mix(shares).items()})
    return out


def branch_key(knob: str) -> str:
    """A branch knob's override key: method fields get ``method.``, dotted job keys stay as they are."""
    return knob if "." in knob else f"method.{knob}"


def plain(value: Any) -> Any:
    """numpy scalars (from Tune's samplers) -> Python values, so configs dump to YAML/JSON cleanly."""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return value.item()
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def apply_overrides(
    job: JobConfig,
    overrides: Mapping[str, Any],
    *,
    source: str = TRIAL_SOURCE,
    config_dir: str | Path | None = None,
) -> JobConfig:
    """Return a new, re-validated JobConfig with dotted overrides (as from ``resolve_trial_config``).

    ``method.name`` is applied first; switching to another method starts that method from its defaults
    (no knob of the base job's method survives, even one with the same name). ``data.mix.<name>`` sets
    the weight of the train file called ``<name>``. Errors are ConfigErrors naming the key; relative
    paths in overrides are resolved against ``config_dir`` (the sweep file's directory) when given.
    """
    raw = job.model_dump(mode="json")
    shares: list[tuple[str, Any]] = []
    for key, value in sorted(overrides.items(), key=lambda item: item[0] != "method.name"):
        parts = tuple(part.strip() for part in str(key).split("."))
        if key.startswith(MIX_PREFIX) and len(parts) > 2:
            shares.append((key[len(MIX_PREFIX) :], value))
            continue
        problem = None if all(parts) else "empty part in dotted key"
        problem = problem or key_problem(parts)
        if problem:
            raise ConfigError(problem, file=source, field=key)
        set_key(raw, parts, value, source=source)
    if shares:
        where = Locator(file=source)
        specs = raw["data"]["train_files"]
        order = match_mix(specs, [(name, ("data", "mix", name)) for name, _ in shares], where)
        for index, (_, weight) in zip(order, shares, strict=True):
            specs[index]["weight"] = plain(weight)
    cfg = validate(raw, source=source, lines={}, overridden=[])
    return cfg if config_dir is None else resolve_paths(cfg, Path(config_dir))


def set_key(raw: dict[str, Any], parts: tuple[str, ...], value: Any, *, source: str = TRIAL_SOURCE) -> None:
    """Set one dotted key in plain job data, creating optional sections (``trainer.early_stopping``)."""
    if (
        parts == ("method", "name")
        and isinstance(raw.get("method"), dict)
        and raw["method"].get("name") != value
    ):
        raw["method"] = {"name": value}
        return
    section = raw
    for depth, part in enumerate(parts[:-1]):
        child = section.get(part)
        if child is None:
            child = section[part] = {}
        elif not isinstance(child, dict):
            parent = ".".join(parts[: depth + 1])
            raise ConfigError(
                f"{parent} is a {type(child).__name__}, not a section", file=source, field=".".join(parts)
            )
        section = child
    section[parts[-1]] = copy.deepcopy(value)


__all__ = ["apply_overrides", "branch_key", "plain", "resolve_trial_config", "set_key"]

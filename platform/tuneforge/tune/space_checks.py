"""Checks of a parsed ``SearchSpace`` beyond its syntax: what the searcher can sample, what the job accepts.

``check_against_job`` validates every value a domain can produce against the schema field it sets, on
top of the sweep's base job, so that a bad range fails when the sweep is loaded instead of in trial 7.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import ValidationError

from tuneforge.config import JobConfig
from tuneforge.config.errors import KeyPath, dotted, explain
from tuneforge.tune.mix import match_mix
from tuneforge.tune.space_types import MIX_PREFIX, Domain, Locator, SearchSpace
from tuneforge.tune.trial import branch_key, set_key

_SCALARS = (str, int, float, bool, type(None))  # what Optuna / HyperOpt categoricals can hold


def check_searcher(
    space: SearchSpace, entries: dict[tuple[str, ...], tuple[Any, KeyPath]], where: Locator, root: KeyPath
) -> None:
    """Reject domains the chosen searcher cannot handle, naming the key."""
    paths = _domain_paths(space, entries, root)
    for key, domain in space.domains():
        path = paths.get(key, root)
        if space.searcher in ("optuna", "hyperopt"):
            if domain.kind == "grid":
                raise where.error(
                    path, f"grid needs searcher random or grid; {space.searcher} samples (use choice)"
                )
            if domain.kind == "choice" and not all(isinstance(v, _SCALARS) for v in domain.args):
                raise where.error(path, f"{space.searcher} can only choose among scalar values")
        elif space.searcher == "random" and domain.kind == "grid" and key.startswith("method["):
            raise where.error(
                path,
                "grid inside a method branch needs searcher: grid (with random it repeats other branches)",
            )


def _domain_paths(
    space: SearchSpace, entries: dict[tuple[str, ...], tuple[Any, KeyPath]], root: KeyPath
) -> dict[str, KeyPath]:
    """Key in ``SearchSpace.domains()`` -> its YAML path, for error lines."""
    out: dict[str, KeyPath] = {}
    for parts, (_, path) in entries.items():
        if parts[0] == "mix" or parts[:2] == ("data", "mix"):
            out[MIX_PREFIX + ".".join(parts[1:] if parts[0] == "mix" else parts[2:])] = path
        elif parts == ("method",) and space.branches:
            for index, branch in enumerate(space.branches):
                for knob in branch.knobs:
                    out[f"method[{branch.label}].{knob}"] = (*path, index, knob)
        else:
            out[".".join(parts)] = path
    return out


def check_against_job(
    space: SearchSpace,
    job: JobConfig,
    entries: dict[tuple[str, ...], tuple[Any, KeyPath]],
    where: Locator,
    root: KeyPath,
) -> None:
    """Validate every value each key can take against the schema, on top of the base job."""
    base = job.model_dump(mode="json")
    paths = _domain_paths(space, entries, root)
    for key, value in space.params.items():
        problem = _value_problem(base, tuple(key.split(".")), value)
        if problem:
            raise where.error(paths.get(key, root), problem)
    method_path = next((path for parts, (_, path) in entries.items() if parts == ("method",)), root)
    for index, branch in enumerate(space.branches):
        for knob, value in branch.knobs.items():
            problem = _value_problem(base, tuple(branch_key(knob).split(".")), value, method=branch.name)
            if problem:
                raise where.error((*method_path, index, knob), problem)
        if not any(isinstance(v, Domain) for v in branch.knobs.values()):
            raw = copy.deepcopy(base)  # fixed branch: its method must validate as a whole
            raw["method"] = {"name": branch.name}
            for knob, value in branch.knobs.items():
                set_key(raw, tuple(branch_key(knob).split(".")), value)
            problem = _field_problem(raw, ("method",))
            if problem:
                raise where.error((*method_path, index), problem)
    if space.mix:
        names = [(n, paths.get(MIX_PREFIX + n, root)) for n in space.mix]
        # mode sources become train files named after their mode (modes.materialize), appended in order
        modes = [{"path": f"{m.mode}.jsonl"} for m in job.data.modes]
        match_mix([spec.model_dump() for spec in job.data.train_files] + modes, names, where)


def _value_problem(
    base: dict[str, Any], parts: tuple[str, ...], value: Any, *, method: str | None = None
) -> str | None:
    """Why some value ``value`` can produce is invalid for ``parts`` on the base job (None if none is).

    A domain is represented by its choices or the ends of its range; a continuous range also by an
    interior point, which catches ``uniform`` on an integer field (its ends may well be whole numbers).
    """
    probes: list[tuple[Any, str]] = [(value, "")]
    if isinstance(value, Domain):
        probes = [(c, f"value {c!r} of {value.kind}: ") for c in value.candidates()]
        if value.kind in ("uniform", "loguniform"):
            low, high = value.bounds()
            inside = low + (high - low) * 0.371
            probes.append((inside, f"{value.kind} gives fractional values like {inside:.4g}; use randint: "))
    for candidate, prefix in probes:
        raw = copy.deepcopy(base)
        if method is not None:
            raw["method"] = {"name": method}
        set_key(raw, parts, candidate)
        problem = _field_problem(raw, parts)
        if problem:
            return prefix + problem
    return None


def _field_problem(raw: dict[str, Any], parts: tuple[str, ...]) -> str | None:
    """The first validation problem at or under ``parts`` (problems elsewhere are not this key's fault)."""
    try:
        JobConfig.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            path, message = explain(error)
            if tuple(path[: len(parts)]) == parts:
                return message if len(path) == len(parts) else f"{dotted(path)}: {message}"
    return None


__all__ = ["check_against_job", "check_searcher"]

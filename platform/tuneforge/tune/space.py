"""The search space of a sweep: parsed from YAML, checked against the job schema, resolved per trial.

A sweep's ``space`` maps job-config keys to values or *domains*::

    method:                                       # conditional branches, one per method
      - {name: lora, r: {choice: [4, 8, 16]}, alpha: {choice: [8, 16, 32]}}
      - {name: prompt_tuning, trainer.lr: {loguniform: [1e-2, 1e-1]}}   # a job key for this branch only
      - full                                      # a branch without knobs
    trainer.lr: {loguniform: [1e-5, 1e-3]}       # dotted keys, or nested mappings (trainer: {lr: ...})
    mix: {editor: {uniform: [0.2, 0.8]}, instruct: rest}   # train-file shares by name/stem

Domains are one-key mappings: ``choice``, ``grid``, ``uniform``, ``loguniform``, ``randint``, ``quniform``.
Anything else is a constant. **``randint: [lo, hi]`` includes ``hi``** (YAML readers expect
``randint: [1, 4]`` to be able to give 4; Tune's own ``randint`` excludes it, so the Tune domain is built
as ``tune.randint(lo, hi + 1)``).

Why branches are laid out flat (``SearchSpace.layout``): Tune's ``BasicVariantGenerator`` can resolve
``tune.sample_from`` and ``choice`` over dicts of domains, but ``OptunaSearch.convert_search_space``
accepts only a flat set of float/int/categorical-of-scalars domains (no functions, no nested domains, no
grid). The one layout both accept is a categorical branch selector ``method`` plus every branch's knobs
under ``method[<label>].<knob>``: every trial samples all of them and ``resolve_trial_config`` keeps only
the chosen branch's knobs, so a resolved trial never carries another method's knobs. With
``searcher: grid`` (BasicVariantGenerator only) ``method`` is instead a ``grid_search`` over one dict per
branch, so that grid domains inside one branch do not multiply the trials of the others.

This module imports no Ray: ``tuneforge.tune.domains`` turns the layout into Tune objects.
"""

from __future__ import annotations

import copy
import difflib
import math
import numbers
import types
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from tuneforge.config import OVERRIDE_SOURCE, ConfigError, JobConfig

# Private helpers of the job loader, reused so that sweep errors read exactly like job errors.
from tuneforge.config.loader import (
    KeyPath,
    _dotted,
    _explain,
    _line_of,
    _resolve_paths,
    _tagged_members,
    _unknown_key_message,
    _validate,
)

DomainKind = Literal["choice", "grid", "uniform", "loguniform", "randint", "quniform"]
DOMAIN_KINDS: tuple[str, ...] = get_args(DomainKind)
Searcher = Literal["random", "grid", "optuna", "hyperopt"]
SEARCHERS: tuple[str, ...] = get_args(Searcher)
REST = "rest"
"""A data-mix share of ``rest`` is 1 minus the sum of the other shares."""

TRIAL_SOURCE = "<search trial>"
_MIX_PREFIX = "data.mix."
_SCALARS = (str, int, float, bool, type(None))  # what Optuna / HyperOpt categoricals can hold
_EPS = 1e-9


# --------------------------------------------------------------------------------------------- domains


@dataclass(frozen=True)
class Domain:
    """One searched value, independent of Ray so that configs can be checked without it.

    ``args`` holds the values of ``choice``/``grid`` and ``(low, high)`` or ``(low, high, q)`` of ranges.
    """

    kind: DomainKind
    args: tuple[Any, ...]

    @property
    def numeric(self) -> bool:
        return self.kind not in ("choice", "grid") or all(_is_number(v) for v in self.args)

    def bounds(self) -> tuple[float, float]:
        """Smallest and largest value a numeric domain can produce (inclusive, after quantization)."""
        if self.kind in ("choice", "grid"):
            return min(self.args), max(self.args)
        return self.args[0], self.args[1]  # quniform bounds are multiples of q (checked when parsed)

    def candidates(self) -> list[Any]:
        """Values standing for the whole domain when it is checked against the schema (ends of ranges)."""
        if self.kind in ("choice", "grid"):
            return list(self.args)
        return list(dict.fromkeys(self.bounds()))  # both ends (one if equal)

    def contains(self, value: Any) -> bool:
        """True if ``value`` is one this domain can produce (``randint`` bounds inclusive)."""
        if self.kind in ("choice", "grid"):
            return value in self.args
        if not _is_number(value):
            return False
        low, high = self.bounds()
        if self.kind == "randint":
            return float(value).is_integer() and low <= value <= high
        inside = low - _EPS * max(1.0, abs(low)) <= value <= high + _EPS * max(1.0, abs(high))
        if self.kind == "quniform":
            steps = value / self.args[2]
            return inside and abs(steps - round(steps)) < 1e-6
        return inside


@dataclass(frozen=True)
class MethodBranch:
    """One method of a conditional method search, with its own knobs (domains or constants).

    Knobs are the method's fields (``r``) or dotted job keys (``trainer.lr``) that apply to this branch
    only and win over the same key searched for all branches: methods want different learning rates.
    """

    label: str  # the method name, or `<name>_<k>` when the same method appears in several branches
    name: str
    knobs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchSpace:
    """A parsed, schema-checked ``space``: plain keys, method branches and data-mix shares."""

    params: dict[str, Any]  # dotted job key -> Domain | constant
    branches: tuple[MethodBranch, ...] = ()
    mix: dict[str, Any] = field(default_factory=dict)  # dataset name/stem -> Domain | float | REST
    searcher: Searcher = "random"

    def layout(self) -> dict[str, Any]:
        """The flat param-space dict Tune gets, with ``Domain`` objects still in place of Tune's.

        Keys: dotted job keys; ``method`` (branch label, or with ``searcher: grid`` the branch dict);
        ``method[<label>].<knob>`` (every branch's knobs, only the chosen one's are used);
        ``data.mix.<name>`` (shares; ``rest`` stays the constant string and is computed per trial).
        """
        out: dict[str, Any] = dict(self.params)
        if self.branches and self.searcher == "grid":
            out["method"] = Domain("grid", tuple({"name": b.name, **b.knobs} for b in self.branches))
        elif self.branches:
            labels = tuple(b.label for b in self.branches)
            out["method"] = Domain("choice", labels) if len(labels) > 1 else labels[0]
            for branch in self.branches:
                out[f"method[{branch.label}].name"] = branch.name
                out.update({f"method[{branch.label}].{k}": v for k, v in branch.knobs.items()})
        out.update({f"{_MIX_PREFIX}{name}": value for name, value in self.mix.items()})
        return out

    def domains(self) -> Iterator[tuple[str, Domain]]:
        """Every searched (non-constant) value with its key in ``resolve_trial_config``'s output."""
        for key, value in self.params.items():
            if isinstance(value, Domain):
                yield key, value
        for branch in self.branches:
            for knob, value in branch.knobs.items():
                if isinstance(value, Domain):
                    yield f"method[{branch.label}].{knob}", value
        for name, value in self.mix.items():
            if isinstance(value, Domain):
                yield f"{_MIX_PREFIX}{name}", value


# --------------------------------------------------------------------------------------------- schema


@cache
def _schema() -> dict[tuple[str, ...], bool]:
    """Every addressable job key -> whether it is a section (has keys of its own)."""
    out: dict[tuple[str, ...], bool] = {}
    _walk_schema(JobConfig, (), out)
    return out


def _walk_schema(model: type[BaseModel], prefix: tuple[str, ...], out: dict[tuple[str, ...], bool]) -> None:
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        members = _tagged_members(info)
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


def unknown_key_message(key: str, allowed: list[str], scope: str = "") -> str:
    """The loader's did-you-mean, but a key that starts a valid one (``grace``) suggests that one first."""
    started = [name for name in allowed if name.startswith(key)]
    if key and len(started) == 1:
        return f"unknown key{scope}; did you mean {started[0]!r}?"
    return _unknown_key_message(key, allowed, scope)


def _method_members() -> dict[str, type[BaseModel]]:
    return _tagged_members(JobConfig.model_fields["method"])


def _key_problem(parts: tuple[str, ...]) -> str | None:
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
    return f"unknown key; valid sections: {', '.join(p[0] for p in schema if len(p) == 1)}"


# --------------------------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Locator:
    """Turns a YAML key path into a ConfigError that points at the file line (or the override)."""

    file: str | None = None
    lines: Mapping[KeyPath, int] = field(default_factory=dict)
    overridden: frozenset[KeyPath] = frozenset()

    def is_overridden(self, path: KeyPath) -> bool:
        return any(path[: len(key)] == key for key in self.overridden)

    def error(self, path: KeyPath, message: str) -> ConfigError:
        where = _dotted(path) or None
        if self.is_overridden(path):
            return ConfigError(message, file=OVERRIDE_SOURCE, field=where)
        return ConfigError(message, file=self.file, line=_line_of(path, self.lines), field=where)


def parse_space(
    space: Any,
    *,
    job: JobConfig | None = None,
    searcher: Searcher = "random",
    locator: Locator | None = None,
    root: KeyPath = ("search", "space"),
) -> SearchSpace:
    """Parse and check a raw ``space`` mapping; every problem is a ConfigError naming the key (and line).

    With ``job`` (the sweep's base job) every value a domain can take is also validated against the
    schema field it sets, and ``mix`` names are matched to the job's train files, so that a bad range
    fails here instead of in trial 7 on the cluster.
    """
    where = locator or Locator()
    if not isinstance(space, Mapping) or not space:
        raise where.error(root, "expected a mapping of job keys to values or domains (nothing to search)")
    entries: dict[tuple[str, ...], tuple[Any, KeyPath]] = {}
    _flatten(space, (), root, entries, where)

    params: dict[str, Any] = {}
    branches: tuple[MethodBranch, ...] = ()
    mix: dict[str, tuple[Any, KeyPath]] = {}
    branch_path: KeyPath | None = None
    for parts, (value, path) in entries.items():
        if parts[0] == "mix" or parts[:2] == ("data", "mix"):
            name = ".".join(parts[1:] if parts[0] == "mix" else parts[2:])
            if not name:
                raise where.error(path, "expected shares by train-file name: mix: {name: share, ...}")
            mix[name] = (_parse_share(value, path, where), path)
        elif parts == ("method",) and isinstance(value, list):
            branches, branch_path = _parse_branches(value, path, where), path
        else:
            problem = _key_problem(parts)
            if problem:
                raise where.error(path, problem)
            params[".".join(parts)] = _parse_value(value, path, where)

    for key, (_, path) in ((k, entries[tuple(k.split("."))]) for k in params):
        if branches and key.startswith("method."):
            line = _line_of(branch_path or (), where.lines)
            raise where.error(
                path,
                f"method is searched as branches{f' (line {line})' if line else ''}; set {key} inside them",
            )
        if key.startswith("method.") and key != "method.name" and "method.name" in params:
            raise where.error(
                path,
                "method.name is searched, so method knobs belong in branches: method: [{name: ...}, ...]",
            )
        if mix and key.startswith("data.train_files"):
            raise where.error(path, "data.train_files cannot be searched together with mix")
        nested = [other for other in params if other.startswith(key + ".")]
        if nested:
            raise where.error(path, f"{key} is set as a whole and also through {nested[0]}")

    result = SearchSpace(params, branches, {name: share for name, (share, _) in mix.items()}, searcher)
    _check_searcher(result, entries, where, root)
    if mix:
        _check_mix(mix, where)
    if job is not None:
        _check_against_job(result, job, entries, where, root)
    return result


def _flatten(
    mapping: Mapping[Any, Any],
    prefix: tuple[str, ...],
    yaml_path: KeyPath,
    out: dict[tuple[str, ...], tuple[Any, KeyPath]],
    where: Locator,
) -> None:
    """Dotted keys and nested mappings -> {key parts: (value, yaml path)}; domains and lists are leaves."""
    for key, value in mapping.items():
        path = (*yaml_path, key)
        if not isinstance(key, str):
            raise where.error(yaml_path, f"keys must be strings (got {key!r})")
        parts = tuple(part.strip() for part in key.split("."))
        if not all(parts):
            raise where.error(path, "empty part in dotted key")
        full = (*prefix, *parts)
        if isinstance(value, Mapping) and not _is_domain(value):
            if not value:
                raise where.error(path, "empty mapping; give a value or a domain")
            _flatten(value, full, path, out, where)
            continue
        if full in out:
            _, previous = out[full]
            if where.is_overridden(previous) and not where.is_overridden(path):
                continue  # a command-line override beats the file
            if not where.is_overridden(path):
                line = _line_of(previous, where.lines)
                raise where.error(
                    path, f"{'.'.join(full)} is set twice{f' (also line {line})' if line else ''}"
                )
        out[full] = (value, path)


def _is_domain(value: Any) -> bool:
    return isinstance(value, Mapping) and any(key in DOMAIN_KINDS for key in value)


def _is_number(value: Any) -> bool:
    """A finite real number; numpy scalars (what Tune samples) count, booleans do not."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _parse_value(value: Any, path: KeyPath, where: Locator) -> Any:
    return _parse_domain(value, path, where) if _is_domain(value) else value


def _parse_domain(value: Mapping[str, Any], path: KeyPath, where: Locator) -> Domain:
    """Check one ``{kind: args}`` mapping and return it as a Domain."""
    if len(value) != 1:
        kinds = ", ".join(DOMAIN_KINDS)
        raise where.error(
            path,
            f"a domain is a mapping with one key ({kinds}); got {', '.join(map(str, value))}",
        )
    kind, args = next(iter(value.items()))
    path = (*path, kind)
    if kind in ("choice", "grid"):
        if not isinstance(args, list) or not args:
            raise where.error(path, f"{kind} takes a non-empty list of values (got {args!r})")
        if any(_is_domain(v) for v in args):
            raise where.error(path, f"{kind} values are constants; domains cannot be nested in them")
        return Domain(kind, tuple(args))
    arity = 3 if kind == "quniform" else 2
    shape = "[low, high, q]" if arity == 3 else "[low, high]"
    if not isinstance(args, list) or len(args) != arity or not all(_is_number(a) for a in args):
        raise where.error(path, f"{kind} takes {shape} as numbers (got {args!r})")
    low, high = args[0], args[1]
    if kind == "randint":
        if not all(isinstance(a, int) for a in args):
            raise where.error(path, f"randint takes integer bounds (got {args!r})")
        if low > high:
            raise where.error(path, f"randint needs low <= high (got {args!r}; both bounds are included)")
        return Domain("randint", (low, high))
    if low >= high:
        raise where.error(path, f"{kind} needs low < high (got {args!r})")
    if kind == "loguniform" and low <= 0:
        raise where.error(path, f"loguniform needs low > 0 (got {args!r})")
    if kind == "quniform":
        if args[2] <= 0:
            raise where.error(path, f"quniform needs q > 0 (got {args!r})")
        q = args[2]
        if not all(math.isclose(b / q, round(b / q)) for b in (low, high)):  # Tune's rule, and Optuna's
            raise where.error(path, f"quniform bounds must be multiples of q (got {args!r})")
        return Domain("quniform", (float(low), float(high), q))
    return Domain(kind, (float(low), float(high)))


def _parse_branches(items: list[Any], path: KeyPath, where: Locator) -> tuple[MethodBranch, ...]:
    """``method: [{name: lora, r: ...}, {name: full}, prompt_tuning]`` -> one MethodBranch each."""
    if not items:
        raise where.error(path, "expected at least one method branch")
    members = _method_members()
    parsed: list[tuple[str, dict[str, Any]]] = []
    for index, item in enumerate(items):
        item_path = (*path, index)
        if isinstance(item, str):
            item = {"name": item}  # `- full` is a branch without knobs
        if not isinstance(item, Mapping):
            raise where.error(
                item_path, "a method branch is a mapping: {name: <method>, <knob>: value or domain}"
            )
        name = item.get("name")
        if name is None:
            raise where.error(
                item_path, f"required key 'name' is missing; expected one of: {', '.join(members)}"
            )
        if not isinstance(name, str) or name not in members:
            if isinstance(name, Mapping | list):
                message = "name is fixed per branch; write one branch per method instead of searching it"
            else:
                close = difflib.get_close_matches(str(name), list(members), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                message = f"unknown method {name!r}; {hint}expected one of: {', '.join(members)}"
            raise where.error((*item_path, "name"), message)
        knobs: dict[str, Any] = {}
        allowed = [k for k in members[name].model_fields if k != "name"]
        for knob, value in item.items():
            if knob == "name":
                continue
            knob_path = (*item_path, knob)
            if isinstance(knob, str) and "." in knob:  # another job key, for this branch only
                parts = tuple(part.strip() for part in knob.split("."))
                problem = (
                    "write method knobs without 'method.'" if parts[0] == "method" else _key_problem(parts)
                )
                if problem:
                    raise where.error(knob_path, problem)
                knob = ".".join(parts)
            elif knob not in allowed:
                raise where.error(knob_path, unknown_key_message(str(knob), allowed, f" for method {name!r}"))
            if isinstance(value, Mapping) and not _is_domain(value):
                raise where.error(knob_path, f"expected a value or one domain ({', '.join(DOMAIN_KINDS)})")
            knobs[str(knob)] = _parse_value(value, knob_path, where)
        parsed.append((name, knobs))
    counts = Counter(name for name, _ in parsed)
    seen: Counter[str] = Counter()
    branches = []
    for name, knobs in parsed:
        seen[name] += 1
        label = name if counts[name] == 1 else f"{name}_{seen[name]}"
        branches.append(MethodBranch(label, name, knobs))
    return tuple(branches)


def _parse_share(value: Any, path: KeyPath, where: Locator) -> Any:
    """A data-mix share: a positive number, a domain over positive numbers, or ``rest``."""
    if value == REST:
        return REST
    if _is_domain(value):
        domain = _parse_domain(value, path, where)
        if not domain.numeric or domain.bounds()[0] <= 0:
            raise where.error(path, "a share domain must produce positive numbers only")
        return domain
    if _is_number(value) and value > 0:
        return float(value)
    raise where.error(path, f"a share is a positive number, a domain or 'rest' (got {value!r})")


def _check_mix(mix: dict[str, tuple[Any, KeyPath]], where: Locator) -> None:
    """With ``rest``, the other shares must leave it positive for every value they can take."""
    rests = [path for share, path in mix.values() if share == REST]
    if len(rests) > 1:
        raise where.error(rests[1], "only one share can be 'rest'")
    if not rests:
        return
    others = [(share, path) for share, path in mix.values() if share != REST]
    if not others:
        raise where.error(rests[0], "'rest' needs other shares to be the rest of")
    fixed = sum(share for share, _ in others if not isinstance(share, Domain))
    most = sum(share.bounds()[1] if isinstance(share, Domain) else share for share, _ in others)
    if fixed >= 1:
        raise where.error(rests[0], f"the fixed shares sum to {fixed:g}, leaving nothing for 'rest'")
    if most >= 1:
        raise where.error(
            rests[0],
            f"the other shares can sum to {most:g} (upper bounds), leaving nothing for 'rest'; keep it < 1",
        )


def _check_searcher(
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
            out[_MIX_PREFIX + ".".join(parts[1:] if parts[0] == "mix" else parts[2:])] = path
        elif parts == ("method",) and space.branches:
            for index, branch in enumerate(space.branches):
                for knob in branch.knobs:
                    out[f"method[{branch.label}].{knob}"] = (*path, index, knob)
        else:
            out[".".join(parts)] = path
    return out


def _check_against_job(
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
            problem = _value_problem(base, tuple(_branch_key(knob).split(".")), value, method=branch.name)
            if problem:
                raise where.error((*method_path, index, knob), problem)
        if not any(isinstance(v, Domain) for v in branch.knobs.values()):
            raw = copy.deepcopy(base)  # fixed branch: its method must validate as a whole
            raw["method"] = {"name": branch.name}
            for knob, value in branch.knobs.items():
                _set(raw, tuple(_branch_key(knob).split(".")), value)
            problem = _field_problem(raw, ("method",))
            if problem:
                raise where.error((*method_path, index), problem)
    if space.mix:
        names = [(n, paths.get(_MIX_PREFIX + n, root)) for n in space.mix]
        _match_mix([spec.model_dump() for spec in job.data.train_files], names, where)


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
        _set(raw, parts, candidate)
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
            path, message = _explain(error)
            if tuple(path[: len(parts)]) == parts:
                return message if len(path) == len(parts) else f"{_dotted(path)}: {message}"
    return None


# --------------------------------------------------------------------------------------------- data mix


def _dataset_ids(spec: Mapping[str, Any]) -> set[str]:
    """Names a mix can call a train file by: its registry name, ``#fragment``, file name and stem."""
    base, _, fragment = str(spec["path"]).partition("#")
    ids = {Path(base).name, Path(base).stem}
    ids.update(x for x in (spec.get("name"), fragment) if x)
    return ids


def _match_mix(specs: list[dict[str, Any]], names: list[tuple[str, KeyPath]], where: Locator) -> list[int]:
    """Map each mix name to exactly one train file and require every train file to get a share."""
    owners: dict[int, str] = {}
    order = []
    known = sorted({i for spec in specs for i in _dataset_ids(spec)})
    for name, path in names:
        matches = [i for i, spec in enumerate(specs) if name in _dataset_ids(spec)]
        if not matches:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise where.error(
                path, f"no train file is called {name!r}; {hint}train files: {', '.join(known)}"
            )
        if len(matches) > 1:
            raise where.error(path, f"{name!r} matches {len(matches)} train files; use a file name or name:")
        if matches[0] in owners:
            raise where.error(path, f"{name!r} and {owners[matches[0]]!r} name the same train file")
        owners[matches[0]] = name
        order.append(matches[0])
    missing = [specs[i]["path"] for i in range(len(specs)) if i not in owners]
    if missing:
        raise where.error(
            names[0][1], f"every train file needs a share (or 'rest'); missing: {', '.join(missing)}"
        )
    return order


def resolve_mix(shares: Mapping[str, Any]) -> dict[str, float]:
    """Sampled shares (numbers and at most one ``rest``) -> weights that sum to 1, in the given order.

    ``rest`` is 1 minus the others, which must stay below 1; without ``rest`` the shares are relative
    and are normalised.
    """
    rest = [name for name, share in shares.items() if share == REST]
    if len(rest) > 1:
        raise ConfigError("only one share can be 'rest'", file=TRIAL_SOURCE, field="data.mix")
    fixed = {name: float(share) for name, share in shares.items() if share != REST}
    for name, share in fixed.items():
        if not math.isfinite(share) or share <= 0:
            raise ConfigError(
                f"share must be positive (got {share!r})", file=TRIAL_SOURCE, field=_MIX_PREFIX + name
            )
    total = sum(fixed.values())
    if rest:
        if total >= 1:
            raise ConfigError(
                f"shares of {', '.join(fixed)} sum to {total:g}, leaving nothing for {rest[0]!r}",
                file=TRIAL_SOURCE,
                field="data.mix",
            )
        return {name: fixed[name] if name in fixed else 1.0 - total for name in shares}
    if not fixed:
        raise ConfigError("no shares", file=TRIAL_SOURCE, field="data.mix")
    return {name: share / total for name, share in fixed.items()}


# --------------------------------------------------------------------------------------------- trials


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
        out["method.name"] = _plain(method.get("name"))
        branch = {_branch_key(k): _plain(v) for k, v in method.items() if k != "name"}
    elif label_prefix and label_prefix + "name" in sampled:
        out["method.name"] = _plain(sampled[label_prefix + "name"])
        for key, value in sampled.items():
            if key.startswith(label_prefix) and key != label_prefix + "name":
                branch[_branch_key(key[len(label_prefix) :])] = _plain(value)
    elif "method" in sampled:
        out["method"] = _plain(method)
    shares: dict[str, Any] = {}
    for key, value in sampled.items():
        if key == "method" or key.startswith("method["):
            continue
        if key.startswith(_MIX_PREFIX):
            shares[key[len(_MIX_PREFIX) :]] = _plain(value)
        else:
            out[key] = _plain(value)
    out.update(branch)
    if shares:
        out.update({_MIX_PREFIX + name: weight for name, weight in resolve_mix(shares).items()})
    return out


def _branch_key(knob: str) -> str:
    """A branch knob's override key: method fields get ``method.``, dotted job keys stay as they are."""
    return knob if "." in knob else f"method.{knob}"


def _plain(value: Any) -> Any:
    """numpy scalars (from Tune's samplers) -> Python values, so configs dump to YAML/JSON cleanly."""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return value.item()
    if isinstance(value, list):
        return [_plain(v) for v in value]
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
        if key.startswith(_MIX_PREFIX) and len(parts) > 2:
            shares.append((key[len(_MIX_PREFIX) :], value))
            continue
        problem = None if all(parts) else "empty part in dotted key"
        problem = problem or _key_problem(parts)
        if problem:
            raise ConfigError(problem, file=source, field=key)
        _set(raw, parts, value, source=source)
    if shares:
        where = Locator(file=source)
        specs = raw["data"]["train_files"]
        order = _match_mix(specs, [(name, ("data", "mix", name)) for name, _ in shares], where)
        for index, (_, weight) in zip(order, shares, strict=True):
            specs[index]["weight"] = _plain(weight)
    cfg = _validate(raw, source=source, lines={}, overridden=[])
    if config_dir is not None:
        _resolve_paths(cfg, Path(config_dir))
    return cfg


def _set(raw: dict[str, Any], parts: tuple[str, ...], value: Any, *, source: str = TRIAL_SOURCE) -> None:
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


__all__ = [
    "DOMAIN_KINDS",
    "REST",
    "SEARCHERS",
    "TRIAL_SOURCE",
    "Domain",
    "DomainKind",
    "Locator",
    "MethodBranch",
    "SearchSpace",
    "Searcher",
    "apply_overrides",
    "parse_space",
    "resolve_mix",
    "resolve_trial_config",
    "searchable_keys",
    "unknown_key_message",
]

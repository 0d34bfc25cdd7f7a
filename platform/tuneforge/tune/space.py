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

This module parses; the rest lives in small modules whose public names are re-exported here:
``space_types`` (``Domain``, ``MethodBranch``, ``SearchSpace``, ``Locator``), ``space_schema`` (which job
keys exist), ``space_checks`` (what the searcher and the job accept), ``mix`` (data-mix shares) and
``trial`` (``resolve_trial_config``, ``apply_overrides``). None of them imports Ray:
``tuneforge.tune.domains`` turns the layout into Tune objects.

Just over 300 lines because of this docstring: the code is the parser alone.
"""

from __future__ import annotations

import difflib
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any, cast

from tuneforge.config import JobConfig
from tuneforge.config.errors import KeyPath, line_of
from tuneforge.tune.mix import check_mix, resolve_mix
from tuneforge.tune.space_checks import check_against_job, check_searcher
from tuneforge.tune.space_schema import (
    expand_shorthand,
    key_problem,
    method_members,
    searchable_keys,
    unknown_key_message,
)
from tuneforge.tune.space_types import (
    DOMAIN_KINDS,
    REST,
    SEARCHERS,
    TRIAL_SOURCE,
    Domain,
    DomainKind,
    Locator,
    MethodBranch,
    Searcher,
    SearchSpace,
    is_number,
)
from tuneforge.tune.trial import apply_overrides, resolve_trial_config


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
            problem = key_problem(parts)
            if problem:
                raise where.error(path, problem)
            params[".".join(parts)] = _parse_value(value, path, where)

    for key, (_, path) in ((k, entries[tuple(k.split("."))]) for k in params):
        if branches and key.startswith("method."):
            line = line_of(branch_path or (), where.lines)
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
    check_searcher(result, entries, where, root)
    if mix:
        check_mix(mix, where)
    if job is not None:
        check_against_job(result, job, entries, where, root)
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
        if not prefix and not (isinstance(value, Mapping) and not _is_domain(value)):
            full = expand_shorthand(full)  # `lr: {...}` means trainer.lr
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
                line = line_of(previous, where.lines)
                raise where.error(
                    path, f"{'.'.join(full)} is set twice{f' (also line {line})' if line else ''}"
                )
        out[full] = (value, path)


def _is_domain(value: Any) -> bool:
    return isinstance(value, Mapping) and any(key in DOMAIN_KINDS for key in value)


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
    key, args = next(iter(value.items()))
    kind = cast(DomainKind, key)  # callers check _is_domain: the one key is a domain kind
    path = (*path, kind)
    if kind in ("choice", "grid"):
        if not isinstance(args, list) or not args:
            raise where.error(path, f"{kind} takes a non-empty list of values (got {args!r})")
        if any(_is_domain(v) for v in args):
            raise where.error(path, f"{kind} values are constants; domains cannot be nested in them")
        return Domain(kind, tuple(args))
    arity = 3 if kind == "quniform" else 2
    shape = "[low, high, q]" if arity == 3 else "[low, high]"
    if not isinstance(args, list) or len(args) != arity or not all(is_number(a) for a in args):
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
    members = method_members()
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
                    "write method knobs without 'method.'" if parts[0] == "method" else key_problem(parts)
                )
                if problem:
                    raise where.error(knob_path, problem)
                knob = ".".join(parts)
            elif knob not in allowed:
                expanded = expand_shorthand((str(knob),)) if isinstance(knob, str) else ()
                if len(expanded) != 2 or expanded[0] == "method":
                    raise where.error(
                        knob_path, unknown_key_message(str(knob), allowed, f" for method {name!r}")
                    )
                knob = ".".join(expanded)  # `lr` in a branch: that branch's trainer.lr
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
    if is_number(value) and value > 0:
        return float(value)
    raise where.error(path, f"a share is a positive number, a domain or 'rest' (got {value!r})")


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

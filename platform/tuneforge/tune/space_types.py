"""The data types of a search space: ``Domain``, ``MethodBranch``, ``SearchSpace`` and ``Locator``.

The leaf of ``tuneforge.tune``'s space modules (it imports none of them); the YAML format they are parsed
from is described in ``tuneforge.tune.space``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from tuneforge.config import OVERRIDE_SOURCE, ConfigError
from tuneforge.config.errors import KeyPath, dotted, line_of

DomainKind = Literal["choice", "grid", "uniform", "loguniform", "randint", "quniform"]
DOMAIN_KINDS: tuple[str, ...] = get_args(DomainKind)
Searcher = Literal["random", "grid", "optuna", "hyperopt"]
SEARCHERS: tuple[str, ...] = get_args(Searcher)
REST = "rest"
"""A data-mix share of ``rest`` is 1 minus the sum of the other shares."""

TRIAL_SOURCE = "<search trial>"
MIX_PREFIX = "data.mix."
"""Prefix of the data-mix keys in the layout and in trial overrides: ``data.mix.<name>``."""


def is_number(value: Any) -> bool:
    """A finite real number; numpy scalars (what Tune samples) count, booleans do not."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Domain:
    """One searched value, independent of Ray so that configs can be checked without it.

    ``args`` holds the values of ``choice``/``grid`` and ``(low, high)`` or ``(low, high, q)`` of ranges.
    """

    kind: DomainKind
    args: tuple[Any, ...]

    @property
    def numeric(self) -> bool:
        return self.kind not in ("choice", "grid") or all(is_number(v) for v in self.args)

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
        out.update({f"{MIX_PREFIX}{name}": value for name, value in self.mix.items()})
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
                yield f"{MIX_PREFIX}{name}", value


@dataclass(frozen=True)
class Locator:
    """Turns a YAML key path into a ConfigError that points at the file line (or the override)."""

    file: str | None = None
    lines: Mapping[KeyPath, int] = field(default_factory=dict)
    overridden: frozenset[KeyPath] = frozenset()

    def is_overridden(self, path: KeyPath) -> bool:
        return any(path[: len(key)] == key for key in self.overridden)

    def error(self, path: KeyPath, message: str) -> ConfigError:
        where = dotted(path) or None
        if self.is_overridden(path):
            return ConfigError(message, file=OVERRIDE_SOURCE, field=where)
        return ConfigError(message, file=self.file, line=line_of(path, self.lines), field=where)


__all__ = [
    "DOMAIN_KINDS",
    "MIX_PREFIX",
    "REST",
    "SEARCHERS",
    "TRIAL_SOURCE",
    "Domain",
    "DomainKind",
    "Locator",
    "MethodBranch",
    "SearchSpace",
    "Searcher",
    "is_number",
]

"""The data mix of a sweep: shares of the train files, matched by name, with ``rest`` for the remainder.

``mix: {editor: {uniform: [0.2, 0.8]}, instruct: rest}`` names train files by catalog name,
``#fragment``, file name or stem; every train file needs a share. ``resolve_mix`` turns a trial's sampled
shares into weights that sum to 1.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuneforge.config import ConfigError
from tuneforge.config.errors import KeyPath
from tuneforge.tune.space_types import MIX_PREFIX, REST, TRIAL_SOURCE, Domain, Locator


def dataset_ids(spec: Mapping[str, Any]) -> set[str]:
    """Names a mix can call a train file by: its catalog name, ``#fragment``, file name and stem."""
    base, _, fragment = str(spec["path"]).partition("#")
    ids = {Path(base).name, Path(base).stem}
    ids.update(x for x in (spec.get("name"), fragment) if x)
    return ids


def match_mix(specs: list[dict[str, Any]], names: list[tuple[str, KeyPath]], where: Locator) -> list[int]:
    """Map each mix name to exactly one train file and require every train file to get a share."""
    owners: dict[int, str] = {}
    order = []
    known = sorted({i for spec in specs for i in dataset_ids(spec)})
    for name, path in names:
        matches = [i for i, spec in enumerate(specs) if name in dataset_ids(spec)]
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


def check_mix(mix: dict[str, tuple[Any, KeyPath]], where: Locator) -> None:
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
                f"share must be positive (got {share!r})", file=TRIAL_SOURCE, field=MIX_PREFIX + name
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


__all__ = ["check_mix", "dataset_ids", "match_mix", "resolve_mix"]

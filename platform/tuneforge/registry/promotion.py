"""The promotion gate: a challenger becomes ``champion`` only when it beats it on held-out data.

Aliases (MLflow's recommended replacement for stages): ``champion`` (serving), ``previous`` (the
champion it replaced, for rollback) and ``challenger`` (evaluated, not promoted). Every decision is
recorded as version tags and as an MLflow run, so the registry explains itself.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from tuneforge.evaluation.evaluate import evaluate, higher_is_better
from tuneforge.evaluation.stats import paired_bootstrap
from tuneforge.paths import tuneforge_home
from tuneforge.registry.resolve import format_for_ref, load_model_ref
from tuneforge.tracking import TrackingClient, redact_uri

CHAMPION, PREVIOUS, CHALLENGER = "champion", "previous", "challenger"
PROMOTION_EXPERIMENT = "tuneforge-promotions"


@dataclass
class Guard:
    """Another eval set that must not regress by more than ``tolerance`` (in the metric's units)."""

    data: str
    tolerance: float = 0.0
    metric: str = "eval_loss"


@dataclass
class Decision:
    """The outcome of one promotion attempt and everything it was based on."""

    name: str
    candidate_version: str
    champion_version: str | None
    promoted: bool
    metric: str
    eval_hash: str
    candidate: dict[str, float]
    champion: dict[str, float] | None
    improvement: dict[str, float] | None
    guards: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def registry_lock(tracking_uri: str, name: str) -> Iterator[None]:
    """Serialise promotions of one registered model on this host (MLflow has no compare-and-set)."""
    key = hashlib.sha256(f"{tracking_uri}|{name}".encode()).hexdigest()[:16]
    lock_dir = tuneforge_home() / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"promote-{key}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def resolve_version(client: TrackingClient, name: str, candidate: str) -> str:
    """A version number as given, or the newest version registered from run ``candidate``."""
    if candidate.isdigit():
        if client.version(name, candidate) is None:
            raise ValueError(f"--candidate {candidate}: '{name}' has no version {candidate}")
        return candidate
    versions = client.versions(name, run_id=candidate)
    if not versions:
        raise ValueError(f"--candidate {candidate}: no version of '{name}' was registered from that run")
    return versions[0].version


def _score(name: str, version: str, data: str, metrics: Sequence[str], tracking_uri: str | None = None):
    """Score one version rendered the way it was trained (its ``tuneforge.format`` tag)."""
    ref = f"models:/{name}/{version}"
    model, tok = load_model_ref(ref)
    return evaluate(model, tok, data, metrics, fmt=format_for_ref(ref, tracking_uri))


def promote(
    name: str,
    candidate: str,
    data: str,
    tracking_uri: str,
    metric: str = "eval_loss",
    min_delta: float = 0.0,
    guards: Sequence[Guard] = (),
) -> Decision:
    """Evaluate candidate vs champion on ``data`` (paired) and move aliases only on a clear win."""
    client = TrackingClient(tracking_uri)
    with registry_lock(tracking_uri, name):
        version = resolve_version(client, name, candidate)
        champion = client.alias_version(name, CHAMPION)
        if champion == version:
            raise ValueError(f"version {version} of '{name}' is already the champion")
        cand = _score(name, version, data, [metric], tracking_uri)
        better = higher_is_better(metric)
        decision = Decision(
            name, version, champion, False, metric, cand.data_hash, cand.metrics[metric].as_dict(), None, None
        )
        champ = None
        if champion is not None:
            champ = _score(name, champion, data, [metric], tracking_uri)
            decision.champion = champ.metrics[metric].as_dict()
            imp = paired_bootstrap(cand.per_example[metric], champ.per_example[metric], better)
            decision.improvement = imp.as_dict()
            if imp.mean < min_delta:
                decision.reasons.append(f"{metric}: improvement {imp.mean:.4f} < min-delta {min_delta}")
            if imp.low <= 0:
                decision.reasons.append(
                    f"{metric}: 95% interval of the improvement [{imp.low:.4f}, "
                    f"{imp.high:.4f}] includes no gain"
                )
            for g in guards:
                decision.guards.append(_check_guard(name, version, champion, g))
                if not decision.guards[-1]["passed"]:
                    decision.reasons.append(
                        f"guard {g.data}: {g.metric} regressed by "
                        f"{decision.guards[-1]['regression']:.4f} > {g.tolerance}"
                    )
        decision.promoted = not decision.reasons
        _apply(client, decision)
        _record(client, decision)
        return decision


def _check_guard(name: str, version: str, champion: str, g: Guard) -> dict[str, Any]:
    cand = _score(name, version, g.data, [g.metric]).metrics[g.metric].mean
    champ = _score(name, champion, g.data, [g.metric]).metrics[g.metric].mean
    regression = (champ - cand) if higher_is_better(g.metric) else (cand - champ)
    return {
        "data": g.data,
        "metric": g.metric,
        "candidate": cand,
        "champion": champ,
        "regression": regression,
        "tolerance": g.tolerance,
        "passed": regression <= g.tolerance,
    }


def _apply(client: TrackingClient, d: Decision) -> None:
    """Move aliases; ``previous`` is set before ``champion`` so an interruption never loses the old one."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    summary = json.dumps({k: v for k, v in d.to_dict().items() if k != "guards"}, sort_keys=True)[:5000]
    if d.promoted:
        if d.champion_version is not None:
            client.set_alias(d.name, PREVIOUS, d.champion_version)
            client.set_version_tags(
                d.name, d.champion_version, {"tuneforge.replaced_by": d.candidate_version}
            )
        client.set_alias(d.name, CHAMPION, d.candidate_version)
        if client.alias_version(d.name, CHALLENGER) == d.candidate_version:
            client.delete_alias(d.name, CHALLENGER)
    else:
        client.set_alias(d.name, CHALLENGER, d.candidate_version)
    client.set_version_tags(
        d.name,
        d.candidate_version,
        {
            "tuneforge.promotion": "promoted" if d.promoted else "rejected",
            "tuneforge.promotion.decision": summary,
            "tuneforge.promotion.at": stamp,
            f"tuneforge.eval.{d.metric}": f"{d.candidate['mean']:.6f}",
            "tuneforge.eval.data_hash": d.eval_hash,
        },
    )
    if d.champion_version is not None and d.champion is not None:
        client.set_version_tags(
            d.name, d.champion_version, {f"tuneforge.eval.{d.metric}": f"{d.champion['mean']:.6f}"}
        )


def _record(client: TrackingClient, d: Decision) -> None:
    """One MLflow run per decision, in its own experiment."""
    run_id = client.create_run(
        PROMOTION_EXPERIMENT,
        name=f"promote-{d.name}-v{d.candidate_version}",
        tags={"tuneforge.model": d.name, "tuneforge.promoted": str(d.promoted).lower()},
    )
    client.log_params(
        run_id,
        {
            "candidate_version": d.candidate_version,
            "champion_version": str(d.champion_version),
            "metric": d.metric,
            "eval_hash": d.eval_hash,
        },
    )
    scores = {f"candidate_{d.metric}": d.candidate["mean"]}
    if d.champion:
        scores[f"champion_{d.metric}"] = d.champion["mean"]
    client.log_metrics(run_id, scores)
    client.log_dict(run_id, d.to_dict(), "decision.json")
    client.finish_run(run_id)


def rollback(name: str, tracking_uri: str) -> tuple[str, str]:
    """Swap ``champion`` and ``previous``; returns (new champion, demoted version)."""
    client = TrackingClient(tracking_uri)
    with registry_lock(tracking_uri, name):
        champion, previous = client.alias_version(name, CHAMPION), client.alias_version(name, PREVIOUS)
        if previous is None or champion is None:
            raise ValueError(f"'{name}' has no '{PREVIOUS}' alias to roll back to")
        client.set_alias(name, CHAMPION, previous)
        client.set_alias(name, PREVIOUS, champion)
        client.set_version_tags(name, champion, {"tuneforge.rolled_back_at": time.strftime("%Y%m%dT%H%M%S")})
        return previous, champion


def show(name: str, tracking_uri: str) -> dict[str, Any]:
    """Versions with aliases, evaluation metrics and lineage tags (newest first)."""
    client = TrackingClient(tracking_uri)
    by_alias = client.aliases(name)
    if by_alias is None:
        raise ValueError(f"no registered model named '{name}' in {redact_uri(tracking_uri)}")
    aliases: dict[str, list[str]] = {}
    for alias, number in by_alias.items():
        aliases.setdefault(number, []).append(alias)
    versions = []
    for v in client.versions(name):
        tags = dict(v.tags)
        metrics = {
            k.removeprefix("tuneforge.eval."): float(val)
            for k, val in tags.items()
            if k.startswith("tuneforge.eval.") and k != "tuneforge.eval.data_hash"
        }
        versions.append(
            {
                "version": v.version,
                "aliases": sorted(aliases.get(v.version, [])),
                "metrics": metrics,
                "tags": tags,
                "run_id": v.run_id,
            }
        )
    return {"name": name, "versions": versions}

"""``tuneforge eval | promote | rollback | models show``: evaluation and the promotion gate."""

from __future__ import annotations

import json
from typing import Any

import typer

from tuneforge.cli._common import JsonFlag, TrackingUri
from tuneforge.cli.errors import user_errors

models_app = typer.Typer(no_args_is_help=True, add_completion=False)


def _uri(tracking_uri: str | None) -> str:
    from tuneforge.tracking import resolve_tracking_uri, use_store

    uri = resolve_tracking_uri(tracking_uri)
    use_store(uri)  # models:/ references loaded by these commands resolve against the process's store
    return uri


def _parse_guard(spec: str):
    from tuneforge.registry.promotion import Guard

    path, _, tol = spec.partition(":")
    try:
        return Guard(path, float(tol) if tol else 0.0)
    except ValueError:
        raise ValueError(f"--guard {spec}: expected FILE or FILE:TOLERANCE (a number)") from None


def _register_mode_metrics() -> None:
    """Metrics are looked up by name; the modes' own ones exist once ``tuneforge.modes`` is imported."""
    import tuneforge.modes  # noqa: F401  (registers every mode's metrics with evaluation)


def _eval_preference(
    model: str, data: str, reference: str | None, beta: float, tracking_uri: str | None, as_json: bool
) -> None:
    """``eval --preference``: preference accuracy, reward accuracy and margin with 95% intervals."""
    with user_errors():
        uri = _uri(tracking_uri)
        from tuneforge.data.trained_format import TrainedFormat
        from tuneforge.evaluation.preference import evaluate_preference
        from tuneforge.registry.resolve import format_for_ref, load_model_ref

        m, tok = load_model_ref(model)
        fmt = format_for_ref(model, uri) or TrainedFormat()
        ref = (load_model_ref(reference)[0], reference) if reference else None
        report = evaluate_preference(m, tok, data, fmt, reference=ref, beta=beta)
        summary: dict[str, Any] = {"model": model, "beta": beta, **report.summary()}
        summary["run_id"] = _log_eval(uri, model, summary)
    for name in ("preference_accuracy", "reward_accuracy", "reward_margin"):
        iv = summary[name]
        line = f"{name:20s} {iv['mean']:.4f}  95% CI [{iv['low']:.4f}, {iv['high']:.4f}]  (n={report.n})"
        typer.echo(line, err=True)
    if reference is None:
        typer.echo("(no --reference: rewards are beta x the model's own log-prob margin)", err=True)
    if as_json:
        print(json.dumps(summary))


def register_registry_commands(app: typer.Typer) -> None:
    """Attach eval/promote/rollback and the ``models`` group to the top-level app."""

    @app.command("eval")
    def eval_cmd(
        model: str = typer.Argument(..., help="Path, run id, runs:/ or models:/NAME/VERSION|@alias"),
        data: str | None = typer.Option(None, "--data", help="Held-out records (any supported format)."),
        preference: str | None = typer.Option(
            None, "--preference", help="Held-out preference pairs: reward accuracy, margin (not --data)"
        ),
        reference: str | None = typer.Option(
            None, "--reference", help="With --preference: the implicit reward's reference model (the base)"
        ),
        beta: float = typer.Option(0.1, "--beta", min=0.0, help="With --preference: reward scale (DPO beta)"),
        metric: list[str] = typer.Option(
            ["eval_loss"], "--metric", help="eval_loss, rougeL, exact_match, chrf"
        ),
        mode: str | None = typer.Option(None, "--mode", help="A tuning mode: use its metrics (`modes list`)"),
        baselines: int = typer.Option(0, "--baselines", min=0, help="Also score --base zero-shot and K-shot"),
        base: str | None = typer.Option(None, "--base", help="Untuned base model for --baselines"),
        tracking_uri: TrackingUri = None,
        as_json: JsonFlag = False,
    ) -> None:
        """Evaluate a model: each metric with a bootstrap 95% interval; logged as an MLflow run."""
        if preference is not None:
            _eval_preference(model, preference, reference, beta, tracking_uri, as_json)
            return
        if data is None:
            typer.echo("error: give --data FILE (records) or --preference FILE (pairs)", err=True)
            raise typer.Exit(1)
        with user_errors():
            uri = _uri(tracking_uri)
            _register_mode_metrics()
            from tuneforge.evaluation.evaluate import evaluate
            from tuneforge.registry.resolve import format_for_ref, load_model_ref

            if mode is not None:
                from tuneforge.evaluation.metrics import metrics_for_mode

                metric = list(metrics_for_mode(mode))
            m, tok = load_model_ref(model)
            fmt = format_for_ref(model, uri)  # render as trained; unrecorded: the tokenizer's own
            report = evaluate(m, tok, data, metric, fmt=fmt)
            summary: dict[str, Any] = {"model": model, **report.summary()}
            summary["template"] = fmt.template if fmt else "auto"
            summary["run_id"] = _log_eval(uri, model, summary)
            if baselines:
                template = fmt.template if fmt else "auto"
                summary["baselines"] = _baselines(model, base, mode, data, baselines, (m, tok), template)
        for name in metric:
            iv = summary[name]
            typer.echo(
                f"{name:12s} {iv['mean']:.4f}  95% CI [{iv['low']:.4f}, {iv['high']:.4f}]  (n={report.n})",
                err=True,
            )
        for setting, scores in summary.get("baselines", {}).items():
            cells = "  ".join(f"{k} {v['mean']:.4f}" for k, v in scores.items() if isinstance(v, dict))
            typer.echo(f"{setting:15s} {cells}", err=True)
        if as_json:
            print(json.dumps(summary))

    @app.command()
    def promote(
        name: str = typer.Argument(..., help="Registered model name"),
        candidate: str = typer.Option(..., "--candidate", help="Version number or training run id"),
        data: str = typer.Option(..., "--data", help="Held-out eval set shared by both models"),
        metric: str = typer.Option("eval_loss", "--metric"),
        min_delta: float = typer.Option(0.0, "--min-delta", help="Smallest improvement that counts"),
        guard: list[str] = typer.Option([], "--guard", help="FILE[:TOLERANCE] that must not regress"),
        tracking_uri: TrackingUri = None,
        as_json: JsonFlag = False,
    ) -> None:
        """Promote CANDIDATE to champion only if it beats the champion with 95% confidence."""
        with user_errors():
            _register_mode_metrics()
            from tuneforge.registry.promotion import promote as do_promote

            d = do_promote(
                name, candidate, data, _uri(tracking_uri), metric, min_delta, [_parse_guard(g) for g in guard]
            )
        verdict = "PROMOTED to champion" if d.promoted else "REJECTED (kept as challenger)"
        typer.echo(
            f"{name} v{d.candidate_version}: {verdict}; champion was "
            f"{'v' + d.champion_version if d.champion_version else 'none'}",
            err=True,
        )
        for r in d.reasons:
            typer.echo(f"  - {r}", err=True)
        if as_json:
            print(json.dumps(d.to_dict()))

    @app.command()
    def rollback(name: str, tracking_uri: TrackingUri = None) -> None:
        """Move ``champion`` back to the ``previous`` version."""
        with user_errors():
            from tuneforge.registry.promotion import rollback as do_rollback

            new, old = do_rollback(name, _uri(tracking_uri))
        typer.echo(f"{name}: champion is v{new} again (v{old} is now 'previous')", err=True)

    @models_app.command("show")
    def show(
        name: str,
        tracking_uri: TrackingUri = None,
        as_json: JsonFlag = False,
    ) -> None:
        """List versions with aliases, metrics and lineage."""
        with user_errors():
            from tuneforge.registry.promotion import show as do_show

            info = do_show(name, _uri(tracking_uri))
        for v in info["versions"]:
            aliases = ",".join(v["aliases"]) or "-"
            metrics = " ".join(f"{k}={val:.4f}" for k, val in v["metrics"].items())
            typer.echo(f"v{v['version']:<4} {aliases:20s} {metrics}", err=True)
        if as_json:
            print(
                json.dumps(
                    {
                        "name": info["name"],
                        "versions": [
                            {k: v[k] for k in ("version", "aliases", "metrics", "tags")}
                            for v in info["versions"]
                        ],
                    }
                )
            )

    app.add_typer(models_app, name="models", help="Inspect registered models.")


def _baselines(
    model: str, base: str | None, mode: str | None, data: str, k: int, tuned: tuple, template: str = "auto"
) -> dict:
    """``{base_zero_shot, base_k_shot, tuned}`` on ``data`` with the mode's metrics (shots: leave-one-out)."""
    if base is None or mode is None:
        raise ValueError("--baselines needs --base (the untuned model) and --mode (whose metrics to use)")
    from tuneforge.data import read_conversations
    from tuneforge.modes import get_mode
    from tuneforge.modes.baselines import prompting_baselines
    from tuneforge.registry.resolve import load_model_ref

    convs = list(read_conversations(data))
    return prompting_baselines(load_model_ref(base), tuned, convs, get_mode(mode), k, template=template)


def _registry_version(client, model_ref: str) -> tuple[str, str] | None:
    """(name, version) for ``models:/NAME/V`` or ``models:/NAME@alias``; None for other references."""
    if not model_ref.startswith("models:/") or model_ref.startswith("models:/m-"):
        return None
    ref = model_ref.removeprefix("models:/")
    if "@" in ref:
        name, alias = ref.split("@", 1)
        number = client.alias_version(name, alias)
        return (name, number) if number is not None else None
    name, _, number = ref.rpartition("/")
    return (name, number) if number.isdigit() else None


def _log_eval(uri: str, model_ref: str, summary: dict[str, Any]) -> str:
    """An evaluation run, tagged with the model it scored (and its registry version when it has one)."""
    from tuneforge.tracking import TrackingClient

    client = TrackingClient(uri)
    run_id = client.create_run("tuneforge-evals", tags={"tuneforge.model_ref": model_ref})
    version = _registry_version(client, model_ref)
    if version is not None:  # link both ways: the eval run names the version, the version its evals
        name, number = version
        client.set_tags(run_id, {"tuneforge.model_version": f"{name}/{number}"})
        client.set_version_tags(name, number, {f"tuneforge.eval_run.{summary['data_hash']}": run_id})
    scores: dict[str, float] = {}
    for k, v in summary.items():
        if isinstance(v, dict):
            for part, val in v.items():
                scores[f"{k}_{part}"] = float(val)
        elif isinstance(v, int | float):
            scores[k] = float(v)
    client.log_metrics(run_id, scores)
    client.log_params(run_id, {"data_hash": summary["data_hash"]})
    client.finish_run(run_id)
    return run_id

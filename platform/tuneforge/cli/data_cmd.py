"""``tuneforge data ...``: dataset inspection commands (validate, preview).

Over 300 lines on purpose: the `data` command group (validate, preview, stats) for SFT and
preference files shares its rendering helpers; each command is thin.

Both read files exactly as a training run does (same readers, templates and masks), so what they
show is what the model will see. Neither starts Ray.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tuneforge.cli._common import JsonFlag, fail
from tuneforge.cli.errors import user_errors

data_app = typer.Typer(no_args_is_help=True, add_completion=False)
out = Console(highlight=False, soft_wrap=True)

FORMATS = "auto, openai, alpaca, sharegpt, text"
#: preference layouts (``tuneforge.data.preference``); auto tells them from SFT files by their keys
PREFERENCE_FORMATS = (
    "openai_preference, stack_exchange, sharegpt_dpo, sharegpt_kto, alpaca_dpo, trl_explicit, trl_unpaired, "
    "hh, trl_implicit"
)
TRAINED_STYLE = "bold green"
PROMPT_STYLE = "dim"
CUT_STYLE = "red strike"


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS.split(", ") + PREFERENCE_FORMATS.split(", "):
        fail(f"--format: unknown format {fmt!r}; expected one of {FORMATS}, {PREFERENCE_FORMATS}")


def _is_preference(path: str, fmt: str) -> bool:
    """Preference data: named by --format, or auto-detected from the file's first record."""
    from tuneforge.data.preference import is_preference_file

    return fmt in PREFERENCE_FORMATS.split(", ") or (fmt == "auto" and is_preference_file(path))


def _validate_preference(path: str, fmt: str, max_errors: int) -> dict[str, Any]:
    """``_validate_one`` for a preference file; the entry also counts paired and unpaired records."""
    from tuneforge.data.preference import read_preference_file

    return _validate_entry(
        path,
        lambda: read_preference_file(path, on_bad="skip", fmt=fmt, max_errors=max_errors),
        lambda parsed: {"records": len(parsed.records), "preference": parsed.counts},
    )


def _validate_entry(
    path: str, read: Callable[[], Any], counts: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    """One input's summary from its reader: format, counts, and its problems (or the one file error)."""
    from tuneforge.data import DataError

    entry: dict[str, Any] = {"path": path, "format": None, "records": 0, "errors": [], "problems": 0}
    try:
        parsed = read()
    except DataError as e:
        entry["errors"], entry["problems"] = [e.to_dict()], 1
        return entry
    except FileNotFoundError:
        entry["errors"], entry["problems"] = [{"line": 0, "field": "", "message": "file not found"}], 1
        return entry
    entry.update(
        format=parsed.format,
        errors=[e.to_dict() for e in parsed.problems.errors],
        problems=parsed.problems.total,
        **counts(parsed),
    )
    return entry


def _validate_one(path: str, fmt: str, max_errors: int) -> dict[str, Any]:
    """One input's summary: format, good records, and its problems (first ``max_errors``)."""
    from tuneforge.data import read_source

    if _is_preference(path, fmt):
        return _validate_preference(path, fmt, max_errors)
    return _validate_entry(
        path,
        lambda: read_source(path, fmt, on_bad="skip", max_errors=max_errors),
        lambda parsed: {"records": len(parsed.conversations)},
    )


@data_app.command()
def validate(
    paths: list[str] = typer.Argument(..., help="Data files (or dataset_info.json#NAME catalog entries)."),
    fmt: str = typer.Option("auto", "--format", "-f", help=f"Record layout: {FORMATS}."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON report as the last line."),
    max_errors: int = typer.Option(50, "--max-errors", help="Problems listed per file."),
) -> None:
    """Check data files record by record; list every problem (exit 1) or summarise them (exit 0)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _check_format(fmt)
    files = [_validate_one(p, fmt, max_errors) for p in paths]
    for f in files:
        if not f["errors"]:
            kinds = ", ".join(f"{n} {k}" for k, n in f.get("preference", {}).items() if n)
            what = f"{f['format']} preference: {kinds}" if "preference" in f else f["format"]
            out.print(f"[green]ok[/green]  {f['path']}: {f['records']} records ({what})")
            continue
        more = f["problems"] - len(f["errors"])
        out.print(f"[red]bad[/red] {f['path']}: {f['problems']} problem(s), {f['records']} good records")
        for e in f["errors"]:
            where = f"{f['path']}:{e['line']}" if e["line"] else f["path"]
            where += f" (record {e['record']})" if e.get("record") else ""
            out.print("    " + ": ".join(p for p in (where, e["field"], e["message"]) if p))
        if more > 0:
            out.print(f"    ... and {more} more")
    bad = sum(1 for f in files if f["errors"])
    total = sum(f["records"] for f in files)
    out.print(f"{len(files)} file(s), {total} records, {bad} with problems")
    if as_json:
        print(json.dumps({"files": files}), flush=True)
    raise typer.Exit(1 if bad else 0)


def _render_record(
    pieces: list[tuple[str, list[int], bool, str]], tokenizer: Any, limit: int, markers: bool, start: int = 0
) -> Text:
    """The record as the model sees it: trained pieces bold green, prompt dim, tokens outside
    ``[start, limit)`` struck (the SFT encoder cuts the tail; the preference encoder cuts the prompt's head).

    ``markers`` also wraps trained runs in ``⟦ ⟧`` so the spans survive where styles do not (logs, pipes).
    """
    text = Text()
    used, open_ = 0, False
    for piece, ids, trained, _ in pieces:
        lo, hi = min(len(ids), max(0, start - used)), min(len(ids), max(0, limit - used))
        for a, b, inside in ((0, lo, False), (lo, max(lo, hi), True), (max(lo, hi), len(ids), False)):
            if a == b and (ids or not inside or used >= limit):
                continue
            if markers and open_ and (not inside or not trained):
                text.append("⟧", style=TRAINED_STYLE)
                open_ = False
            elif markers and inside and trained and not open_:
                text.append("⟦", style=TRAINED_STYLE)
                open_ = True
            style = (TRAINED_STYLE if trained else PROMPT_STYLE) if inside else CUT_STYLE
            text.append(piece if (a, b) == (0, len(ids)) else tokenizer.decode(ids[a:b]), style=style)
        used += len(ids)
    if markers and open_:
        text.append("⟧", style=TRAINED_STYLE)
    return text


def _stats_table(stats: dict[str, Any], skipped: int) -> Table:
    table = Table(title="statistics", show_header=False)
    length = stats["length"]
    over = stats["over_max_seq_len"]
    fate = (
        f"{stats['truncated']} truncated, {stats['dropped_too_long']} dropped, {stats['chunked']} chunked"
        if over
        else "none"
    )
    rows = [
        ("records", str(stats["records"])),
        ("skipped bad records", str(skipped)),
        ("tokens", str(stats["tokens"])),
        ("trained tokens", f"{stats['trained_tokens']} ({stats['trained_share']:.1%})"),
        *[(f"  trained from {r}", f"{s:.1%}") for r, s in stats["trained_share_by_role"].items()],
        (
            "length p50 / p90 / p99 / max",
            f"{length['p50']} / {length['p90']} / {length['p99']} / {length['max']}",
        ),
        (f"longer than max_seq_len={stats['max_seq_len']}", f"{over} ({fate})"),
        ("dropped: nothing left to train", str(stats["dropped_no_trained_tokens"])),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table


@data_app.command()
def preview(
    path: str | None = typer.Argument(None, help="A data file (or dataset_info.json#NAME)."),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="A job YAML: preview its (first) train file with its real tokenizer, template, max_seq_len "
        "and mask options (they win over the flags below); starts nothing.",
    ),
    fmt: str = typer.Option("auto", "--format", "-f", help=f"Record layout: {FORMATS}."),
    template: str = typer.Option("auto", "--template", "-t", help="auto, chatml, tokenizer, llama3, alpaca."),
    n: int = typer.Option(3, "-n", help="Records to render."),
    tokenizer_dir: Path | None = typer.Option(
        None, "--tokenizer", help="Tokenizer directory (default: train a BPE)."
    ),
    max_seq_len: int = typer.Option(512, "--max-seq-len", help="Sequence limit for the statistics."),
    truncation: str = typer.Option("truncate", "--truncation", help="truncate or drop over-long records."),
    train_on_prompt: bool = typer.Option(False, "--train-on-prompt"),
    last_turn_only: bool = typer.Option(False, "--last-turn-only"),
    vocab_size: int = typer.Option(
        1024, "--vocab-size", help="Vocabulary of the BPE trained without --tokenizer."
    ),
    markers: bool | None = typer.Option(
        None, "--markers/--no-markers", help="Wrap trained spans in ⟦ ⟧ (default: when not a terminal)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON on the last line."),
) -> None:
    """Render records as the model sees them (trained spans highlighted), then corpus statistics."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tuneforge.data import read_source, render_text
    from tuneforge.data.encode import record_pieces
    from tuneforge.data.stats import corpus_stats

    _check_format(fmt)
    if path is None and config is None:
        fail("give a data file or --config JOB")
    with user_errors():
        job = None
        if config is not None:
            from tuneforge.config import load_config

            job = load_config(config)
            if path is None:
                if not job.data.train_files:
                    raise ValueError(f"{config}: data.train_files is empty (modes-only job): pass a file")
                path = job.data.train_files[0].path
            d, t = job.data, job.trainer
            template, max_seq_len, truncation = d.template, t.max_seq_len, d.truncation
            train_on_prompt, last_turn_only = d.train_on_prompt, d.last_turn_only
        assert path is not None  # given, or the first train file of --config (neither: fail() above)
        if _is_preference(path, fmt):
            _preview_preference(
                path, fmt, n, job, config, tokenizer_dir, vocab_size, markers, as_json,
                template=template, max_seq_len=max_seq_len, truncation=truncation,
            )  # fmt: skip
            return
        parsed = read_source(path, fmt, on_bad="skip")
        convs = parsed.conversations
        if job is not None:
            from tuneforge.data.encode import resolve_template
            from tuneforge.models.base import job_tokenizer
            from tuneforge.paths import tuneforge_home

            home = tuneforge_home()
            # The run's own plan and sampler: a tiny model's BPE is trained on all the job's train files,
            # as in a run (importing the pipeline loads Ray's modules; nothing is started).
            from tuneforge.distributed.data_pipeline import build_plan

            texts = (
                []
                if job.model.name_or_path
                else build_plan(job.data, job.trainer.seed).sample_texts(job.data.template)
            )
            tokenizer = job_tokenizer(
                job.model, texts, home / "preview" / "base", job.trainer.seed, home / "cache" / "models"
            )
            template = resolve_template(template, tokenizer)
            vocab = f"the job's tokenizer ({len(tokenizer)} tokens), template {template}"
            out.print(f"{config}: {vocab}, max_seq_len {max_seq_len}")
        elif tokenizer_dir is not None:
            from tuneforge.models.tokenizer import load_tokenizer

            tokenizer = load_tokenizer(tokenizer_dir)
        else:
            from tuneforge.models.tokenizer import train_bpe_tokenizer

            tokenizer = train_bpe_tokenizer((render_text(c, template) for c in convs), vocab_size)
        opts = {"train_on_prompt": train_on_prompt, "last_turn_only": last_turn_only}
        out.print(
            f"{parsed.source}: {parsed.format}, {len(convs)} records; "
            f"[{TRAINED_STYLE}]trained[/{TRAINED_STYLE}] [{PROMPT_STYLE}]not trained[/{PROMPT_STYLE}] "
            f"[{CUT_STYLE}]cut at max_seq_len[/{CUT_STYLE}]"
        )
        for conv in convs[:n]:
            pieces = record_pieces(conv, tokenizer, template, **opts)
            tokens = sum(len(ids) for _, ids, _, _ in pieces)
            trained = sum(len(ids) for _, ids, t, _ in pieces if t)
            out.rule(f"{conv.source}:{conv.line} · {tokens} tokens · {trained} trained")
            limit = max_seq_len if conv.mode != "pretrain" else 10**12  # raw text is chunked, not cut
            out.print(
                _render_record(pieces, tokenizer, limit, not out.is_terminal if markers is None else markers)
            )
        stats = corpus_stats(convs, tokenizer, template, max_seq_len, truncation=truncation, **opts).to_dict()
    out.rule()
    out.print(_stats_table(stats, parsed.problems.total))
    for kind, examples in parsed.problems.examples.items():
        out.print(f"skipped ({kind}): {parsed.problems.counts[kind]}, e.g. {examples[0]}")
    if as_json:
        print(
            json.dumps(
                {"path": parsed.source, "format": parsed.format, "skipped": parsed.problems.total, **stats}
            ),
            flush=True,
        )


def _preference_tokenizer(
    job: Any,
    config: Path | None,
    tokenizer_dir: Path | None,
    vocab_size: int,
    template: str,
    texts: list[str],
) -> tuple[Any, str]:
    """The tokenizer a preference preview renders with, and the template resolved for it (as ``preview``)."""
    from tuneforge.data.encode import resolve_template

    if job is not None:
        from tuneforge.data.preference.plan import plan_preference
        from tuneforge.models.base import job_tokenizer
        from tuneforge.paths import tuneforge_home

        d, home = job.data, tuneforge_home()
        texts = []  # a tiny model's BPE learns from the run's own plan, as in a run
        if not job.model.name_or_path:
            texts = plan_preference(
                d.train_files, d.eval_files, objective=job.method.objective, eval_fraction=d.eval_fraction,
                seed=job.trainer.seed, dedup=d.dedup, on_bad=d.on_bad_record, max_records=d.max_records,
            ).texts()  # fmt: skip
        base, cache = home / "preview" / "base", home / "cache" / "models"
        tokenizer = job_tokenizer(job.model, texts, base, job.trainer.seed, cache)
        template = resolve_template(template, tokenizer)
        out.print(f"{config}: the job's tokenizer ({len(tokenizer)} tokens), template {template}")
        return tokenizer, template
    if tokenizer_dir is not None:
        from tuneforge.models.tokenizer import load_tokenizer

        return load_tokenizer(tokenizer_dir), template
    from tuneforge.models.tokenizer import train_bpe_tokenizer

    return train_bpe_tokenizer(texts, vocab_size), template


def _slashed(percentiles: dict[str, int]) -> str:
    return " / ".join(str(v) for v in percentiles.values())


def _preview_preference(
    path: str, fmt: str, n: int, job: Any, config: Path | None, tokenizer_dir: Path | None, vocab_size: int,
    markers: bool | None, as_json: bool, *, template: str, max_seq_len: int, truncation: str,
) -> None:  # fmt: skip
    """``preview`` of a preference file: each record's prompt once, then each reply with its trained
    tokens marked; tokens the encoder would cut (the prompt's head, a too-long reply's tail) struck."""
    from tuneforge.data.preference import (
        fit_lengths,
        preference_pieces,
        preference_stats,
        read_preference_file,
    )

    parsed = read_preference_file(path, on_bad="skip", fmt=fmt)
    records = parsed.records
    texts = [m.content for rec in records for m in (*rec.prompt, *rec.replies)]
    tokenizer, template = _preference_tokenizer(job, config, tokenizer_dir, vocab_size, template, texts)
    kinds = ", ".join(f"{c} {k}" for k, c in parsed.counts.items() if c)
    out.print(
        f"{parsed.source}: {parsed.format}, {len(records)} preference records ({kinds}); "
        f"[{TRAINED_STYLE}]trained[/{TRAINED_STYLE}] [{PROMPT_STYLE}]not trained[/{PROMPT_STYLE}] "
        f"[{CUT_STYLE}]cut at max_seq_len[/{CUT_STYLE}]"
    )
    mark = not out.is_terminal if markers is None else markers
    for rec in records[:n]:
        pieces = preference_pieces(rec, tokenizer, template)
        prompt = pieces.pop("prompt")
        n_prompt = sum(len(ids) for _, ids, _, _ in prompt)
        sizes = {
            k: (sum(len(i) for _, i, _, _ in ps), sum(len(i) for _, i, t, _ in ps if t))
            for k, ps in pieces.items()
        }
        longest = max(s for s, _ in sizes.values())
        keep_prompt, keep_reply = fit_lengths(n_prompt, longest, max_seq_len)
        if truncation == "drop":  # a dropped record is shown whole; the rule says it is dropped
            keep_prompt, keep_reply = n_prompt, longest
        label = "" if rec.label is None else (" · desirable" if rec.label else " · undesirable")
        sides = " · ".join(f"{k} {size} tokens, {trained} trained" for k, (size, trained) in sizes.items())
        over = n_prompt + longest > max_seq_len
        cut = f" · dropped: longer than {max_seq_len}" if over and truncation == "drop" else ""
        if over and truncation == "truncate":
            cut = f" · cut to {max_seq_len}: prompt head -{n_prompt - keep_prompt}"
            cut += (
                "" if keep_reply >= max(s for s, _ in sizes.values()) else f", reply tail after {keep_reply}"
            )
        out.rule(f"{rec.source}:{rec.line} · {rec.kind}{label} · prompt {n_prompt} tokens · {sides}{cut}")
        out.print(_render_record(prompt, tokenizer, n_prompt, mark, start=n_prompt - keep_prompt))
        for name, ps in pieces.items():
            out.print(Text(f"{name}:", style="bold"))
            out.print(_render_record(ps, tokenizer, keep_reply, mark))
    stats = preference_stats(records, tokenizer, template, max_seq_len, truncation)
    out.rule()
    table = Table(title="statistics", show_header=False)
    over = stats["over_max_seq_len"]
    fate = f"{stats['truncated']} truncated, {stats['dropped_too_long']} dropped" if over else "none"
    for key, value in (
        ("records", f"{stats['records']} ({kinds or 'none'})"),
        ("skipped bad records", str(parsed.problems.total)),
        ("prompt tokens p50 / p90 / p99 / max", _slashed(stats["prompt_tokens"])),
        ("reply tokens p50 / p90 / p99 / max", _slashed(stats["reply_tokens"])),
        ("prompt + longest reply p50 / p90 / p99 / max", _slashed(stats["length"])),
        ("trained tokens per reply (mean)", str(stats["trained_tokens_per_reply"])),
        (f"longer than max_seq_len={max_seq_len}", f"{over} ({fate})"),
    ):  # fmt: skip
        table.add_row(key, value)
    out.print(table)
    for kind, examples in parsed.problems.examples.items():
        out.print(f"skipped ({kind}): {parsed.problems.counts[kind]}, e.g. {examples[0]}")
    if as_json:
        summary = {"path": parsed.source, "format": parsed.format, "skipped": parsed.problems.total, **stats}
        print(json.dumps(summary), flush=True)


@data_app.command()
def build(
    mode: str = typer.Argument(..., help="Tuning mode (see `tuneforge modes list`)."),
    more: list[str] = typer.Argument(None, help="Sources after --from's first.", show_default=False),
    sources: list[str] = typer.Option([], "--from", help="Source files, as many as the mode takes."),
    out_path: str = typer.Option(..., "--out", help="Output JSONL (OpenAI chat; {text} for domain)."),
    seed: int = typer.Option(0, "--seed", help="Seed for synthetic builders and mixing."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Write at most N records."),
    option: list[str] = typer.Option([], "--option", "-o", help="Builder knob KEY=VALUE, e.g. ratio=0.3."),
    as_json: JsonFlag = False,
) -> None:
    """Compile source data into a mode's training records; print counts and a sample."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tuneforge.data import render_text
    from tuneforge.modes.materialize import build_file

    with user_errors():
        options = dict(_key_value(o) for o in option)
        report = build_file(mode, [*sources, *(more or [])], out_path, seed, limit, options)
    counts = " · ".join(f"{k} {v}" for k, v in sorted(report.counts.items()))
    out.print(f"{mode}: {report.records} records -> {out_path}  ({counts})")
    if report.sample is not None:
        out.rule("sample")
        out.print(Text(render_text(report.sample)))
    if as_json:
        print(json.dumps(report.to_dict()), flush=True)


def _key_value(spec: str) -> tuple[str, str]:
    key, sep, value = spec.partition("=")
    if not sep or not key:
        raise ValueError(f"--option {spec}: expected KEY=VALUE")
    return key.strip(), value.strip()

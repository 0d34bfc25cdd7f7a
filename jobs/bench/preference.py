"""Preference alignment on a real model: does DPO (KTO, SimPO) make SmolLM2 prefer corrected English?

Pairs from JFLEG (../shared/data/jfleg, CC BY-NC-SA 4.0; read at run time, never bundled): the prompt
asks for a grammatical version of a learner's sentence, the chosen reply is a human correction
(``dev.ref0``) and the rejected reply is the sentence left as written. Each objective trains LoRA on
SmolLM2-135M-Instruct through ``tuneforge train``'s own driver (Ray Data -> Ray Train + DeepSpeed ->
MLflow registry); then, on the run's held-out pairs, the registered model is scored against its base
(the DPO reference): reward accuracy with a bootstrap 95% interval and the preference accuracy of
base and tuned. The generation-side effect is the GLEU (nltk, against all four JFLEG references) of
greedy outputs for held-out sentences, base vs tuned, and the copy-the-input baseline.

    .venv/bin/python jobs/bench/preference.py [--objectives dpo,kto,simpo] [--steps 40] [--pairs 400]
        [--prompts 24] [--out bench-preference] [section.key=value ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from tuneforge.config import load_config
from tuneforge.data.preference import read_preference_file
from tuneforge.data.trained_format import find_format
from tuneforge.distributed.runner import run_job
from tuneforge.errors import exit_with, user_errors
from tuneforge.evaluation.evaluate import greedy_generate
from tuneforge.evaluation.preference import evaluate_preference
from tuneforge.evaluation.stats import bootstrap_ci
from tuneforge.models.base import prepare_base
from tuneforge.paths import tuneforge_home
from tuneforge.registry.resolve import load_model_ref

REPO = Path(__file__).resolve().parents[2]
JFLEG = REPO.parent / "shared" / "data" / "jfleg"
CONFIG = REPO / "jobs/configs/finetune/smollm2_lora_cpu.yaml"
ASK = "Rewrite this sentence in correct English. Reply with the sentence only.\n\n"


def jfleg_pairs(n: int, out: Path) -> dict[str, list[str]]:
    """Write ``n`` OpenAI preference pairs (correction > original) to ``out``; sentence -> its 4 refs."""
    src = (JFLEG / "dev.src").read_text().splitlines()
    refs = [(JFLEG / f"dev.ref{i}").read_text().splitlines() for i in range(4)]
    lines, by_src = [], {}
    for i, sentence in enumerate(src):
        s, good = sentence.strip(), refs[0][i].strip()
        if not s or not good or good == s or s in by_src:
            continue
        by_src[s] = [r[i].strip() for r in refs]
        lines.append(json.dumps({
            "input": {"messages": [{"role": "user", "content": ASK + s}]},
            "preferred_output": [{"role": "assistant", "content": good}],
            "non_preferred_output": [{"role": "assistant", "content": s}],
        }))  # fmt: skip
        if len(lines) == n:
            break
    out.write_text("\n".join(lines) + "\n")
    return by_src


def gleu(predictions: list[str], references: list[list[str]]) -> dict[str, float]:
    """Sentence GLEU against every reference (nltk), with a bootstrap 95% interval."""
    from nltk.translate.gleu_score import sentence_gleu

    pairs = zip(predictions, references, strict=True)
    scores = [sentence_gleu([r.split() for r in refs], p.split()) for p, refs in pairs]
    return bootstrap_ci(np.asarray(scores)).as_dict()


def run_objective(objective: str, pairs: Path, args: argparse.Namespace, overrides: list[str]) -> dict:
    job = load_config(
        CONFIG,
        [
            f"data.train_files={pairs}", "data.eval_fraction=0.15", "data.packing=false",
            f"method.objective={objective}", f"trainer.max_steps={args.steps}", "trainer.num_epochs=1",
            "trainer.max_seq_len=128", "trainer.micro_batch_size=4", "trainer.eval_every=0",
            "trainer.lr=2e-4",
            *(["method.beta=2.0", "method.simpo_gamma=1.0"] if objective == "simpo" else []),
            "distributed.cpus_per_worker=2", f"tracking.run_name=bench-pref-{objective}-{int(time.time())}",
            f"registry.model_name=bench-pref-{objective}", "tracking.experiment=tuneforge-bench-preference",
            *overrides,
        ],
    )  # fmt: skip
    started = time.perf_counter()
    summary = run_job(job)
    return {"summary": summary.to_dict(), "seconds": round(time.perf_counter() - started, 1), "job": job}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objectives", default="dpo,kto,simpo")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--prompts", type=int, default=24, help="held-out sentences to correct greedily")
    parser.add_argument("--out", default="bench-preference")
    args, overrides = parser.parse_known_args(argv)
    if not JFLEG.exists():
        print(f"skipped: {JFLEG} is absent (the benchmark reads JFLEG from ../shared/data)", file=sys.stderr)
        return 0
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    pairs = out / "jfleg_pairs.jsonl"
    refs_of = jfleg_pairs(args.pairs, pairs)
    results: dict[str, dict] = {}
    base = None
    for objective in args.objectives.split(","):
        run = run_objective(objective, pairs, args, overrides)
        s, job = run["summary"], run.pop("job")
        run_dir = Path(s["run_dir"])
        fmt = find_format(run_dir)
        assert fmt is not None
        if base is None:
            cache = tuneforge_home() / "cache" / "models"
            base_dir = prepare_base(job.model, [], run_dir / "base", job.trainer.seed, cache)
            base = load_model_ref(str(base_dir))
        tuned, tok = load_model_ref(f"models:/{s['registered_model']}/{s['version']}")
        held = run_dir / "eval.jsonl"
        scored = evaluate_preference(tuned, tok, held, fmt, reference=(base[0], "base"), beta=job.method.beta)
        base_pref = evaluate_preference(base[0], tok, held, fmt)
        records = [r for r in read_preference_file(str(held)).records if r.rejected is not None]
        records = records[: args.prompts]
        sentences = [r.prompt[-1].content[len(ASK) :] for r in records]
        prompts = [
            tok.apply_chat_template([{"role": "user", "content": r.prompt[-1].content}], tokenize=False,
                                    add_generation_prompt=True)
            for r in records
        ]  # fmt: skip
        refs = [refs_of[x] for x in sentences]
        gen = {"copy_input": sentences}
        for label, model in (("base", base[0]), ("tuned", tuned)):
            gen[label] = greedy_generate(model, tok, prompts, max_new_tokens=64)
        run.update(
            held_out_pairs=scored.n,
            reward_accuracy=scored.metrics["reward_accuracy"].as_dict(),
            reward_margin=scored.metrics["reward_margin"].as_dict(),
            preference_accuracy_tuned=scored.metrics["preference_accuracy"].as_dict(),
            preference_accuracy_base=base_pref.metrics["preference_accuracy"].as_dict(),
            gleu={k: gleu([p.strip() for p in v], refs) for k, v in gen.items()},
            examples=[{"sentence": x, "base": b, "tuned": t} for x, b, t in
                      zip(sentences[:3], gen["base"][:3], gen["tuned"][:3], strict=False)],
        )  # fmt: skip
        results[objective] = run
        del tuned
        print(json.dumps({objective: {k: v for k, v in run.items() if k != "examples"}}, default=str))
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {out / 'results.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "platform"))
    with user_errors(exit_with):
        sys.exit(main(sys.argv[1:]))

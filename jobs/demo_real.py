"""``make demo-real``: fine-tune a real pretrained model, then show what changed on held-out prompts.

Runs one job (default: LoRA on SmolLM2-135M-Instruct with the bundled real instructions) through the
whole platform -- GGUF conversion (cached), Ray Data, Ray Train + DeepSpeed, MLflow, the registry --
then greedily answers a few held-out prompts with the base model and with the registered model,
both asked in the template the run trained with, and prints them next to the reference answers.

    .venv/bin/python jobs/demo_real.py [--config jobs/configs/finetune/smollm2_lora_cpu.yaml]
        [--prompts 3] [--max-new-tokens 48] [--json] [section.key=value ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from pathlib import Path

from tuneforge.config import load_config
from tuneforge.data import read_conversations
from tuneforge.data.trained_format import find_format
from tuneforge.distributed.runner import run_job
from tuneforge.errors import exit_with, user_errors
from tuneforge.evaluation.evaluate import greedy_generate, split_prompt_reference
from tuneforge.models.base import prepare_base
from tuneforge.paths import tuneforge_home
from tuneforge.registry.resolve import load_model_ref

DEFAULT_CONFIG = "jobs/configs/finetune/smollm2_lora_cpu.yaml"


class _Print:
    def phase(self, message: str) -> None:
        print(f"  · {message}", file=sys.stderr, flush=True)

    def training_started(self, tracking_uri: str, run_id: str, total_steps: int) -> None:
        print(f"  · run {run_id[:8]}: {total_steps} steps", file=sys.stderr, flush=True)

    def training_finished(self) -> None:
        pass


def _short(text: str, width: int = 100) -> str:
    return textwrap.shorten(" ".join(text.split()), width=width, placeholder=" ...")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--prompts", type=int, default=3, help="held-out prompts to answer")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    args, overrides = parser.parse_known_args(argv)
    job = load_config(args.config, overrides)
    started = time.perf_counter()
    summary = run_job(job, _Print())
    run_dir = Path(summary.run_dir)

    fmt = find_format(run_dir)
    template = fmt.template if fmt else "auto"
    held = [c for c in read_conversations(run_dir / "eval.jsonl") if len(c.messages) >= 2]
    held = sorted(held, key=lambda c: len(c.messages[-1].content))[: args.prompts]  # short answers
    questions = [next(m.content for m in reversed(c.messages) if m.role == "user") for c in held]
    references = [c.messages[-1].content for c in held]
    cache = tuneforge_home() / "cache" / "models"
    base_dir = prepare_base(job.model, [], run_dir / "base", job.trainer.seed, cache)  # cached: no rework
    tuned_ref = (
        f"models:/{summary.registered_model}/{summary.version}" if summary.version else summary.checkpoint
    )
    answers = {}
    for label, ref in (("base", str(base_dir)), ("tuned", tuned_ref)):
        model, tok = load_model_ref(ref)
        prompts = [split_prompt_reference(c, tok, template)[0] for c in held]
        answers[label] = greedy_generate(model, tok, prompts, args.max_new_tokens)
        del model

    print(
        f"\ndone in {time.perf_counter() - started:.1f}s · {summary.steps} steps · "
        f"{summary.tokens_per_second:.0f} tokens/s · template {template}"
    )
    print(f"  eval loss      {summary.eval_loss_before:.4f} → {summary.eval_loss_after:.4f}")
    print(f"  registered     {summary.registered_model} v{summary.version}")
    for i, (question, ref) in enumerate(zip(questions, references, strict=True)):
        print(f"\n[{i + 1}] {_short(question)}")
        print(f"    reference  {_short(ref)}")
        print(f"    base       {_short(answers['base'][i])}")
        print(f"    tuned      {_short(answers['tuned'][i])}")
    if args.json:
        rows = [
            {"prompt": q, "reference": r, "base": answers["base"][i], "tuned": answers["tuned"][i]}
            for i, (q, r) in enumerate(zip(questions, references, strict=True))
        ]
        print(json.dumps({**summary.to_dict(), "template": template, "generations": rows}))
    return 0


if __name__ == "__main__":
    with user_errors(exit_with):  # bad config or data: one line and exit 1, as the CLI does
        sys.exit(main(sys.argv[1:]))

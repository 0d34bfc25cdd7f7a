"""Precision on CPU: fp32 against bf16-mixed (autocast) and bf16 weights, on the same steps, in one run.

    python jobs/bench/precision.py --out precision.json                 # SmolLM2-135M, full fine-tuning
    python jobs/bench/precision.py --model tiny --steps 3 --rounds 1    # a quick check

Each set-up trains the same batches of the bundled real text through tuneforge's ``setup_engine``
(DeepSpeed, ZeRO-0, 1 rank, every core) from the same weights; the set-ups alternate for ``--rounds``
rounds, each in a fresh process. Reports per set-up the median step time after ``--warmup`` steps (the
median over rounds), the speed-up over fp32, and the largest relative difference of its per-step losses
from fp32's. ``model.dtype: auto`` picks bf16-mixed on CPUs with bf16 instructions from these numbers
(docs/performance.md, "bf16 on CPU"). Timings are this machine's: compare the ratios.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "platform"))  # runnable from a checkout without the editable install
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".tuneforge" / "torch_extensions"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402 - the environment above must be set before torch/deepspeed load

SETUPS = ("float32", "bf16-mixed", "bfloat16")
TINY = {
    "vocab_size": 49152, "hidden_size": 128, "intermediate_size": 344, "num_hidden_layers": 4,
    "num_attention_heads": 4, "max_position_embeddings": 512,
}  # fmt: skip


def batches(tokenizer_dir: Path, steps: int, rows: int, seq: int) -> list[torch.Tensor]:
    """``steps`` batches of ``rows x seq`` tokens of the bundled real instructions, concatenated."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    texts = []
    for path in sorted(glob.glob(str(REPO / "platform/tuneforge/assets/data/real/*.jsonl"))):
        for line in Path(path).read_text().splitlines():
            texts.append(" ".join(str(v) for v in json.loads(line).values()))
    ids = tok("\n\n".join(texts))["input_ids"]
    need = steps * rows * seq
    ids = (ids * (need // len(ids) + 1))[:need]
    return list(torch.tensor(ids).view(steps, rows, seq))


def train(rank: int, world: int, setup: str, model_dir: str, data: list[torch.Tensor]) -> dict[str, Any]:
    """One set-up's steps on one rank (the ``spawn`` target): step times and losses."""
    from tuneforge.config import config_from_dict
    from tuneforge.models.factory import build_tiny_model, load_model
    from tuneforge.models.precision import autocast_dtype, resolve_dtype
    from tuneforge.training.engine import setup_engine

    model_cfg: dict[str, Any] = {"tiny": TINY} if model_dir == "tiny" else {"name_or_path": model_dir}
    rows, seq = data[0].shape
    job = config_from_dict(
        {
            "data": {"train_files": ["unused.jsonl"]},
            "model": {**model_cfg, "dtype": setup},
            "trainer": {
                "max_steps": len(data),
                "lr": 5e-5,
                "lr_scheduler": "constant",
                "warmup_steps": 0,
                "micro_batch_size": rows,
                "max_seq_len": seq,
            },
            "distributed": {"num_workers": 1, "zero_stage": 0},
            "registry": {"model_name": None},
        }
    )
    torch.manual_seed(0)
    weights = resolve_dtype(setup, use_gpu=False)
    if model_dir == "tiny":
        model = build_tiny_model(job.model.tiny, TINY["vocab_size"], seed=0).to(weights)
    else:
        model = load_model(model_dir, job.model)
    engine = setup_engine(model, job.trainer, job.distributed, world, len(data), weights,
                          autocast_dtype(setup, use_gpu=False))  # fmt: skip
    times, losses = [], []
    for ids in data:
        start = time.perf_counter()
        loss = engine(input_ids=ids, labels=ids).loss
        engine.backward(loss)
        engine.step()
        losses.append(float(loss.detach()))
        times.append(time.perf_counter() - start)
    return {"times": times, "losses": losses}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2", help="smollm2 (the real model) or tiny")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--out", type=Path)
    args = p.parse_args()

    from tuneforge.models.gguf import SMOLLM2_REF, convert_gguf, resolve_package_file
    from tuneforge.models.precision import cpu_supports_bf16
    from tuneforge.testing import spawn

    real = convert_gguf(resolve_package_file(SMOLLM2_REF), REPO / ".tuneforge" / "cache" / "models")
    model_dir = str(real) if args.model == "smollm2" else "tiny"
    data = batches(real, args.steps, args.rows, args.seq_len)  # the real tokenizer for both models
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in SETUPS}
    for _ in range(args.rounds):
        for setup in SETUPS:
            runs[setup].append(spawn(train, 1, setup, model_dir, data, threads=os.cpu_count() or 1)[0])
    step = {
        s: statistics.median(statistics.median(r["times"][args.warmup :]) for r in rs)
        for s, rs in runs.items()
    }
    fp32 = runs["float32"][0]["losses"]
    report = {
        "model": args.model,
        "cpu_bf16": cpu_supports_bf16(),
        "threads": os.cpu_count(),
        "tokens_per_step": args.rows * args.seq_len,
        "setups": {
            s: {
                "median_step_s": step[s],
                "speedup_vs_fp32": step["float32"] / step[s],
                "max_rel_loss_diff_vs_fp32": max(
                    abs(a - b) / abs(a) for a, b in zip(fp32, rs[0]["losses"], strict=True)
                ),
                "losses": rs[0]["losses"],
            }
            for s, rs in runs.items()
        },
    }
    for s, r in report["setups"].items():
        print(f"{s:11s} step {r['median_step_s']:.3f} s  x{r['speedup_vs_fp32']:.2f} vs fp32  "
              f"loss diff <= {100 * r['max_rel_loss_diff_vs_fp32']:.2f}%")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()

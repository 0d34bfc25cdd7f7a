"""``run_bench``: every path of one benchmark, in order, each in a fresh process.

Order: the matmul peak (this process), the single-process paths (plain packed, plain padded, HF
Trainer), the Ray Data tokenization rates (which fill the token cache cold), then the full path with
1 worker and with the machine's worker count, both on the warm cache. A fresh process per path gives
each its own peak memory and its own start-up, as a separate command would; the timing rule (median of
the windows after the warm-up) is the same for all.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

import torch

from tuneforge.bench import report as rep
from tuneforge.bench.batches import packed_batches, padded_batches, train_conversations
from tuneforge.bench.corpus import write_corpus
from tuneforge.bench.full_path import run_full
from tuneforge.bench.hf_trainer import run_hf
from tuneforge.bench.measure import ModelShape, flops_per_token, window_rates
from tuneforge.bench.peak import device_peak_bf16, measure_peak
from tuneforge.bench.plain_loop import bench_device, quiet, run_plain
from tuneforge.bench.settings import BenchSettings, bench_job, machine_workers
from tuneforge.bench.tokenize_rate import run_tokenize_rates
from tuneforge.config import JobConfig
from tuneforge.data.tokenize_blocks import EncodeSettings
from tuneforge.models.tokenizer import load_tokenizer

T = TypeVar("T")
Say = Callable[[str], None]


def in_fresh_process(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a spawned process (its own memory high-water mark, imports and threads)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def model_shape(base_dir: Path, seq_len: int) -> ModelShape:
    """The FLOP-relevant shape of the base model (built on the meta device: no weights loaded)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(str(base_dir))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    params = sum(p.numel() for p in model.parameters())
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    return ModelShape(
        params=params,
        embedding_params=0 if tied else model.get_input_embeddings().weight.numel(),
        layers=cfg.num_hidden_layers,
        hidden=cfg.hidden_size,
        intermediate=cfg.intermediate_size,
        vocab=cfg.vocab_size,
        seq_len=seq_len,
    )


def machine() -> dict[str, Any]:
    import deepspeed
    import ray
    import transformers

    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.processor()
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "deepspeed": deepspeed.__version__,
        "ray": ray.__version__,
        "load_average_1m": os.getloadavg()[0],
    }


def run_bench(
    settings: BenchSettings, base: JobConfig | None = None, say: Say = print, work: Path | None = None
) -> dict[str, Any]:
    """Measure every path of ``settings.paths``; the JSON report (``tokens_per_s``: full path, 1 worker)."""
    own_work = work is None
    work = Path(work or tempfile.mkdtemp(prefix="tf-bench-"))
    try:
        return _run(settings, base, say, work)
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)


def _run(settings: BenchSettings, base: JobConfig | None, say: Say, work: Path) -> dict[str, Any]:
    from tuneforge.distributed.stages import prepare

    quiet()
    use_gpu = torch.cuda.is_available()
    corpus = write_corpus(work / "data" / "bench.jsonl", settings.records) if base is None else work / "none"
    job1 = bench_job(settings, work, corpus, base, workers=1, use_gpu=use_gpu)
    n = settings.workers or machine_workers(settings.rows, use_gpu, gpus=torch.cuda.device_count())
    say("preparing data, base model and tokenizer")
    prepared = prepare(job1, work / "prepare", say)
    tok_dir, base_dir = str(prepared.tok_dir), str(prepared.base_dir)
    tokenizer = load_tokenizer(tok_dir)
    d = job1.data
    enc = EncodeSettings(
        d.template, settings.seq_len, True, d.train_on_prompt, d.last_turn_only, d.truncation
    )
    convs = train_conversations(prepared.job, prepared.plan)  # type: ignore[arg-type]
    packed = packed_batches(convs, tokenizer, enc, settings.rows)
    padded = padded_batches(convs, tokenizer, enc, settings.rows)
    shape = model_shape(Path(base_dir), settings.seq_len)
    flops = flops_per_token(shape)
    device = bench_device(use_gpu)

    say("measuring the matmul peak")
    peak = measure_peak(shape, settings.tokens_per_step, device)
    peak["device_peak_bf16"] = device_peak_bf16(device)
    steps, raw1 = settings.steps, job1.model_dump(mode="json")
    paths: dict[str, dict[str, Any]] = {}
    for name, fn, data in (
        ("plain", run_plain, packed),
        ("padded", run_plain, padded),
        ("hf", run_hf, packed),
    ):
        if name not in settings.paths:
            continue
        say(f"path: {rep.LABELS[name]}")
        out = in_fresh_process(fn, raw1, base_dir, data.batches, steps, use_gpu)
        tokens, positions = data.step_tokens(steps), data.step_positions(steps)
        rates = window_rates(out["step_seconds"], tokens, settings.warmup, settings.window)
        timed = slice(settings.warmup, settings.warmup + settings.windows * settings.window)
        entry = rep.path_entry(
            rates, sum(tokens[timed]), sum(positions[timed]), out["peak_rss_bytes"], flops, peak
        )
        entry.update(
            trained_tokens=sum(tokens), steps=len(out["step_seconds"]), threads=out["threads"], workers=1
        )
        paths[name] = entry

    tokenization: dict[str, Any] = {}
    if {"full_1", "full_n"} & set(settings.paths):
        say("tokenization: fast tokenizer vs Ray Data (fills the token cache)")
        texts = prepared.plan.sample_texts("chatml")  # type: ignore[union-attr]
        tokenization = in_fresh_process(run_tokenize_rates, raw1, tok_dir, texts)
    data_padding = (tokenization.get("pipeline") or {}).get("stats", {}).get("train_padding_share")
    for name, workers in (("full_1", 1), ("full_n", n)):
        if name not in settings.paths:
            continue
        say(f"path: {rep.LABELS[name].format(n=workers)}")
        job = bench_job(settings, work, corpus, base, workers=workers, use_gpu=use_gpu)
        out = in_fresh_process(run_full, job.model_dump(mode="json"), time.time())
        windows = [(s, v) for s, v in out["windows"] if s - settings.window >= settings.warmup]
        # the loop counts every position of a packed row; trained tokens leave its padding out
        share = data_padding if data_padding is not None else paths.get("plain", {}).get("padding_share", 0.0)
        rates = [v * (1.0 - share) for _, v in windows]
        entry = rep.path_entry(rates, 1.0 - share, 1.0, out["peak_rss_bytes_rank0"], flops, peak)
        ps = out["phase_seconds"]
        entry.update(
            workers=workers,
            zero_stage=job.distributed.zero_stage,
            steps=out["summary"]["steps"],
            seconds_to_first_step=ps.get("to first step"),
            seconds_to_end=ps.get("to end"),
            phase_seconds=ps,
            loop_tokens_per_s_all_steps=out["summary"]["tokens_per_second"],
            run_wall_seconds=out["summary"]["wall_seconds"],
        )
        paths[name] = entry
    rep.add_ratios(paths)
    report: dict[str, Any] = {
        "tokens_per_s": paths.get("full_1", {}).get("tokens_per_s"),
        "machine": machine(),
        "settings": {**settings.to_dict(), "workers": n, "tokens_per_step": settings.tokens_per_step},
        "model": {
            **shape.__dict__,
            "matmul_params": shape.matmul_params,
            "flops_per_token": flops,
            "flops_formula": rep.FLOPS_FORMULA,
        },
        "peak": peak,
        "paths": paths,
        "tokenization": tokenization,
    }
    report["targets"] = rep.targets(report)
    return report

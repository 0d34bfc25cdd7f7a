"""Every tuning method x ZeRO stage {0, 2, 3} on 2 CPU ranks, without Ray (helper of test_methods_matrix).

Two processes (``torch.multiprocessing``, gloo on loopback) each run *all* cases in one go, so process
start-up and DeepSpeed's comm-op load are paid once. Per case: load the tiny base from disk, apply the
method, check the trainable count against the analytic one, train 8 steps with ``deepspeed.initialize``
(via ``tuneforge.training.engine.setup_engine``) on a fixed repeated-pattern batch, save with
``save_checkpoint`` (all ranks), then rank 0 reloads the checkpoint from disk, compares probe logits and
generates. Generation is checked twice: the reloaded model's greedy token ids for two chat prompts must
equal the in-memory trained model's (generated on every rank: a collective under ZeRO-3), and greedy
continuations of the training rows' first halves must match their true second halves better than the
untrained base's do. Rank 0 appends one JSON line per case to ``results.jsonl`` as it goes.

Run standalone to print the table pasted in docs/methods.md::

    .venv/bin/python tests/integration/methods_matrix.py
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from tuneforge.testing import TINY_MODEL, free_port

STAGES = (0, 2, 3)
STEPS = 8
SEQ_LEN = 16
MICRO_BATCH = 4
# The shared tiny shape with grouped-query attention (2 KV heads): the analytic trainable counts cover it.
TINY = {**TINY_MODEL.model_dump(), "num_key_value_heads": 2}
# name -> (method section, learning rate)
CASES: dict[str, tuple[dict[str, Any], float]] = {
    "full": ({"name": "full"}, 5e-3),
    "freeze_top": ({"name": "freeze", "train_top_layers": 1, "train_lm_head": True}, 5e-3),
    "freeze_gradual": ({"name": "freeze", "train_top_layers": 1, "unfreeze_every": 4}, 5e-3),
    "lora": ({"name": "lora", "r": 4, "alpha": 8}, 2e-2),
    "dora": ({"name": "lora", "r": 4, "alpha": 8, "use_dora": True, "target_modules": "all-linear"}, 2e-2),
    "ia3": ({"name": "ia3"}, 5e-2),
    "prompt_tuning": ({"name": "prompt_tuning", "num_virtual_tokens": 4}, 5e-2),
    "prompt_tuning_text": (
        {"name": "prompt_tuning", "num_virtual_tokens": 4, "init": "text", "init_text": "hello world"},
        5e-2,
    ),
    "prefix_tuning": ({"name": "prefix_tuning", "num_virtual_tokens": 4}, 5e-2),
    "prefix_tuning_proj": (
        {
            "name": "prefix_tuning",
            "num_virtual_tokens": 4,
            "prefix_projection": True,
            "encoder_hidden_size": 16,
        },
        1e-2,
    ),
    "p_tuning_mlp": ({"name": "p_tuning", "num_virtual_tokens": 4, "encoder_hidden_size": 16}, 1e-2),
    "p_tuning_lstm": (
        {
            "name": "p_tuning",
            "num_virtual_tokens": 4,
            "encoder_hidden_size": 16,
            "encoder_reparameterization_type": "LSTM",
        },
        1e-2,
    ),  # fmt: skip
}
PROMPTS = ["hello world 3", "hi"]  # chat prompts, left-padded into one batch (they differ in length)
GEN_TOKENS = 4
HALF = SEQ_LEN // 2  # continuation check: prompt = first HALF ids of each training row, target = the rest
TEXTS = [
    f"<|im_start|>user\nhello world {i}<|im_end|>\n<|im_start|>assistant\nhi {i}<|im_end|>\n"
    for i in range(50)
]


def build_base(workdir: Path) -> Path:
    """Tiny Llama (GQA, so prefix tuning's key/value sizing is exercised) + BPE tokenizer, saved."""
    from tuneforge.config import TinyModelConfig
    from tuneforge.models.factory import build_tiny_model
    from tuneforge.models.io import save_hf
    from tuneforge.models.tokenizer import train_bpe_tokenizer

    tok = train_bpe_tokenizer(TEXTS, 300)
    model = build_tiny_model(
        TinyModelConfig(**TINY),
        len(tok),
        seed=0,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    return save_hf(model, tok, workdir / "base")


def batch() -> torch.Tensor:
    """8 rows of simple arithmetic patterns (period 3-10 over ids 10..49): easy, so loss falls fast."""
    rows = [[10 + (start + k * stride) % 40 for k in range(SEQ_LEN)] for start, stride in
            [(0, 1), (5, 2), (3, 3), (7, 1), (1, 4), (2, 5), (9, 2), (4, 1)]]  # fmt: skip
    return torch.tensor(rows, dtype=torch.long)


def _mean_loss(engine: Any, x: torch.Tensor) -> float:
    """Eval-mode loss on this rank's rows, averaged over ranks (a forward: collective under ZeRO-3)."""
    import torch.distributed as dist

    engine.eval()
    with torch.no_grad():
        loss = engine(input_ids=x, attention_mask=torch.ones_like(x), labels=x).loss.detach().float()
    engine.train()
    dist.all_reduce(loss)
    return float(loss) / dist.get_world_size()


@torch.no_grad()
def greedy_ids(model: Any, tokenizer: Any, prompts: list[str],
               max_new_tokens: int = GEN_TOKENS) -> list[list[int]]:  # fmt: skip
    """The new token ids of a greedy, left-padded chat generation: ``tuneforge.models.generation.generate``
    without the decode, so two models' generations compare token by token."""
    from tuneforge.models.generation import build_prompt

    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        enc = tokenizer([build_prompt(p, "chat") for p in prompts], return_tensors="pt", padding=True,
                        add_special_tokens=False)  # fmt: skip
    finally:
        tokenizer.padding_side = side
    was_training = model.training
    model.eval()
    out = model.generate(
        input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], max_new_tokens=max_new_tokens,
        do_sample=False, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    model.train(was_training)
    return out[:, enc["input_ids"].shape[1] :].tolist()


@torch.no_grad()
def continuation_matches(model: Any) -> int:
    """Positions where the greedy continuation of every training row's first half equals its second half
    (out of ``8 * HALF``): what 8 steps on those rows taught, read through ``generate``."""
    x = batch()
    was_training = model.training
    model.eval()
    out = model.generate(
        input_ids=x[:, :HALF], attention_mask=torch.ones_like(x[:, :HALF]), max_new_tokens=SEQ_LEN - HALF,
        min_new_tokens=SEQ_LEN - HALF, do_sample=False, pad_token_id=0, eos_token_id=None,
    )  # fmt: skip
    model.train(was_training)
    return int((out[:, HALF:SEQ_LEN] == x[:, HALF:]).sum())


def _layer0_weight(module: torch.nn.Module, stage: int) -> torch.Tensor:
    """A copy of block 0's q_proj weight (gathered under ZeRO-3: every rank must call this)."""
    import deepspeed

    p = dict(module.named_parameters())["model.layers.0.self_attn.q_proj.weight"]
    with deepspeed.zero.GatheredParameters([p], modifier_rank=None, enabled=stage == 3):
        return p.detach().clone()


def run_case(name: str, stage: int, rank: int, world: int, base_dir: Path, out_root: Path) -> dict[str, Any]:
    import torch.distributed as dist
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from tuneforge.config import config_from_dict
    from tuneforge.models.freeze import on_optimizer_step
    from tuneforge.models.generation import generate, load_for_inference
    from tuneforge.models.methods import apply_method, count_parameters, expected_trainable_params
    from tuneforge.models.tokenizer import load_tokenizer
    from tuneforge.training.checkpoint import TrainerState, probe_logits, save_checkpoint, verify_checkpoint
    from tuneforge.training.engine import setup_engine

    started = time.perf_counter()
    section, lr = CASES[name]
    job = config_from_dict(
        {
            "data": {"train_files": ["unused.jsonl"]},
            "method": section,
            "trainer": {"lr": lr, "micro_batch_size": MICRO_BATCH, "max_seq_len": SEQ_LEN,
                        "lr_scheduler": "constant", "grad_clip": 1.0},
            "distributed": {"num_workers": world, "zero_stage": stage},
        }
    )  # fmt: skip
    tokenizer = load_tokenizer(base_dir)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    model = apply_method(model, job.method, tokenizer_dir=base_dir)
    trainable, total = count_parameters(model)
    expected = expected_trainable_params(model.config, job.method)
    engine = setup_engine(model, job.trainer, job.distributed, world, STEPS, torch.float32)
    x = batch()[rank * MICRO_BATCH : (rank + 1) * MICRO_BATCH]
    loss_before = _mean_loss(engine, x)
    gated = name == "freeze_gradual"
    layer0_start = _layer0_weight(engine.module, stage) if gated else None
    layer0_frozen_until_unfreeze = None
    losses = []
    for step in range(STEPS):
        on_optimizer_step(engine.module, step)
        loss = engine(input_ids=x, attention_mask=torch.ones_like(x), labels=x).loss
        engine.backward(loss)
        engine.step()
        losses.append(float(loss.detach()))
        if gated and step + 1 == 4:  # block 0 is unfrozen from step 5 on (unfreeze_every=4)
            layer0_frozen_until_unfreeze = bool(
                torch.equal(_layer0_weight(engine.module, stage), layer0_start)
            )
    loss_after = _mean_loss(engine, x)
    vocab = int(engine.module.config.vocab_size)
    probe = probe_logits(engine.module, vocab, torch.device("cpu"))
    ckpt = out_root / f"{name}-z{stage}"
    save_checkpoint(
        engine, tokenizer, ckpt if rank == 0 else None, rank=rank, zero_stage=stage,
        state=TrainerState(STEPS, 0, STEPS, "matrix"), probe=probe,
    )  # fmt: skip
    result: dict[str, Any] = {
        "case": name, "method": section["name"], "stage": stage, "trainable": trainable, "expected": expected,
        "total": total, "loss_before": loss_before, "loss_after": loss_after, "losses": losses,
    }  # fmt: skip
    live_ids = greedy_ids(engine.module, tokenizer, PROMPTS)  # every rank: ZeRO-3 gathers in forward
    if rank == 0:
        files = sorted(p.name for p in ckpt.iterdir())
        result["files"] = files
        result["probe_shape"] = list(probe.shape)
        result["max_abs_diff"] = verify_checkpoint(ckpt, atol=1e-5)
        reloaded, tok = load_for_inference(ckpt)
        result["generated"] = generate(reloaded, tok, PROMPTS, max_new_tokens=GEN_TOKENS, style="chat")
        result["generated_ids"] = greedy_ids(reloaded, tok, PROMPTS)
        result["decoded_ids"] = [tok.decode(ids, skip_special_tokens=True) for ids in result["generated_ids"]]
        result["live_ids"] = live_ids
        result["eos_id"] = tok.eos_token_id
        result["continuation"] = continuation_matches(reloaded)
        base_model, _ = load_for_inference(base_dir)
        result["continuation_base"] = continuation_matches(base_model)
        result["base_ids"] = greedy_ids(base_model, tok, PROMPTS)
        if section["name"] == "freeze":
            saved = load_file(str(ckpt / "model.safetensors"))
            base = load_file(str(base_dir / "model.safetensors"))
            key = "model.layers.0.self_attn.q_proj.weight"
            result["layer0_changed"] = not torch.equal(saved[key], base[key])
            result["layer0_frozen_until_unfreeze"] = layer0_frozen_until_unfreeze
    dist.barrier()
    del engine, model
    gc.collect()
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def _worker(rank: int, world: int, port: int, workdir: str, cases: list[str], stages: list[int]) -> None:
    import torch.distributed as dist

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
    )  # fmt: skip
    torch.set_num_threads(1)
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
    dist.init_process_group("gloo", rank=rank, world_size=world)
    root = Path(workdir)
    results = root / "results.jsonl"
    for stage in stages:
        for name in cases:
            try:
                row = run_case(name, stage, rank, world, root / "base", root / "ckpt")
            except Exception:  # record and go on: a failure in one case must not hide the others
                row = {"case": name, "stage": stage, "error": traceback.format_exc(limit=8)}
                dist.barrier()
            if rank == 0:
                with results.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    dist.destroy_process_group()


def run_matrix(workdir: Path, cases: list[str] | None = None, stages: tuple[int, ...] = STAGES,
               timeout_s: float = 600) -> list[dict[str, Any]]:  # fmt: skip
    """Spawn 2 ranks that run every case; returns the per-case rows written by rank 0."""
    import torch.multiprocessing as mp

    for key, value in {
        "DS_ACCELERATOR": "cpu",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }.items():
        os.environ.setdefault(key, value)
    build_base(workdir)
    ctx = mp.start_processes(
        _worker,
        args=(2, free_port(), str(workdir), list(cases or CASES), list(stages)),
        nprocs=2,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + timeout_s
    try:
        while not ctx.join(timeout=5):
            if time.monotonic() > deadline:
                raise TimeoutError(f"methods matrix still running after {timeout_s}s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.terminate()
    path = workdir / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def main() -> None:
    repo = Path(__file__).resolve().parents[2]
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(repo / ".tuneforge" / "torch_extensions"))
    started = time.perf_counter()
    rows = run_matrix(Path(tempfile.mkdtemp(prefix="tf-matrix-")), sys.argv[1:] or None)
    print("| case | stage | trainable | expected | loss before -> after | max abs diff | s |")
    for r in rows:
        if "error" in r:
            print(f"| {r['case']} | {r['stage']} | ERROR {r['error'].splitlines()[-1]} |")
            continue
        print(
            f"| {r['case']} | {r['stage']} | {r['trainable']} | {r['expected']} | "
            f"{r['loss_before']:.3f} -> {r['loss_after']:.3f} | {r['max_abs_diff']:.1e} | {r['seconds']} |"
        )
    print(f"total {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()

"""Learning evidence for the tuning modes, on CPU and without Ray (docs/modes.md pastes the output).

For editor (synthetic corruption), diff, reverse-instruction and filter: build a few thousand pairs
with the modes' own builders, train one tiny model per mode, and score on held-out pairs
the untuned base zero-shot, the base k-shot and the tuned model with the mode's metrics.

Training uses tuneforge's building blocks in one process: ``models.factory.build_tiny_model``,
``models.tokenizer.train_bpe_tokenizer``, the data layer's templates/loss masks/packing, and
``training.local.reference_train`` (the plain-PyTorch loop with the engine's AdamW groups, clipping
and LR schedule that the DeepSpeed engine is checked against). No DeepSpeed here: one process on a
2-CPU box gains nothing from it. The base is first continued-pretrained briefly on the domain text
(the ``domain`` mode), so that "untuned" means a small language model, not random weights.

    .venv/bin/python jobs/bench/modes_learning.py --pairs 3000 --steps 600
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tuneforge.config import TinyModelConfig, TrainerConfig
from tuneforge.data import Conversation, collate, encode_conversation, pack_examples, render_text
from tuneforge.models.factory import build_tiny_model
from tuneforge.models.tokenizer import train_bpe_tokenizer
from tuneforge.modes import BuildOptions, get_mode
from tuneforge.modes.baselines import score_mode, summarize
from tuneforge.testing import reference_train

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
TEXT = [str(SHARED / "llamafactory" / n) for n in ("wiki_demo.txt", "c4_demo.jsonl", "alpaca_en_demo.json")]
INSTRUCT = [
    str(SHARED / "llamafactory" / "alpaca_en_demo.json"),
    "platform/tuneforge/assets/data/tiny_alpaca.jsonl",
    str(SHARED / "self-instruct" / "seed_tasks.jsonl"),
    str(SHARED / "fastchat" / "dummy_conversation.json"),
]
#: mode -> (sources, builder options, max new tokens at evaluation)
PLANS: dict[str, tuple[list[str], dict[str, str], int]] = {
    "editor": (TEXT, {"keep_clean": "0.1", "max_edits": "2", "max_words": "12"}, 40),
    "diff": (TEXT, {"lines": "2", "synthetic": "true", "max_words": "14"}, 72),
    "reverse-instruction": (INSTRUCT, {}, 40),
    "filter": ([], {"max_sentences": "5"}, 64),
}


def short(conv: Conversation, max_words: int) -> bool:
    """Keep pairs a tiny model can hold: every message at most ``max_words`` words."""
    return all(len(m.content.split()) <= max_words for m in conv.messages if m.role != "system")


def build(mode: str, n: int, seed: int) -> list[Conversation]:
    sources, options, _ = PLANS[mode]
    opts = BuildOptions(seed=seed, options=dict(options, n=str(4 * n)))
    limit = {"editor": 16, "diff": 100, "reverse-instruction": 48, "filter": 60}[mode]
    out, seen = [], set()
    for item in get_mode(mode).build(sources, opts):
        conv = get_mode(mode).compile(item)
        h = conv.content_hash()
        if short(conv, limit) and h not in seen:
            seen.add(h)
            out.append(conv)
    random.Random(seed).shuffle(out)
    return out[:n]


def batches(convs: list[Conversation], tok, seq_len: int, rows: int) -> list[dict[str, torch.Tensor]]:
    examples = [e for c in convs if (e := encode_conversation(c, tok, "chatml", seq_len)) is not None]
    blocks = pack_examples(examples, seq_len, tok.pad_token_id)
    random.Random(0).shuffle(blocks)
    return [collate(blocks[i : i + rows]) for i in range(0, len(blocks) - rows + 1, rows)]


def train(model, convs, tok, steps: int, lr: float, seq_len: int, rows: int) -> tuple[float, float]:
    """``steps`` optimizer steps over packed ``rows x seq_len`` batches (cycled); (final loss, seconds)."""
    trainer = TrainerConfig(lr=lr, warmup_ratio=0.05, lr_scheduler="cosine", max_seq_len=seq_len)
    losses, seconds, _ = reference_train(model, batches(convs, tok, seq_len, rows), trainer, steps)
    return float(np.mean(losses[-20:])), seconds


def copy_input(convs: list[Conversation], mode: str) -> dict:
    """What returning the input unchanged scores: the floor a model must beat to be editing."""
    from tuneforge.evaluation.metrics import score

    m = get_mode(mode)
    src = [next(x.content for x in c.messages if x.role == "user") for c in convs]
    if mode == "diff":
        src = [s.split("\n\nDiff:\n")[0].removeprefix("Text:\n") for s in src]
    refs = [c.messages[-1].content for c in convs]
    per = {k: score(k, src, refs, convs) for k in m.metrics if k != "eval_loss"}
    return summarize(per)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modes", default="editor,diff,reverse-instruction,filter")
    ap.add_argument("--pairs", type=int, default=3000, help="train pairs per mode")
    ap.add_argument("--eval", type=int, default=100, help="held-out pairs per mode")
    ap.add_argument("--steps", type=int, default=350, help="optimizer steps per mode")
    ap.add_argument("--pretrain-steps", type=int, default=100)
    ap.add_argument("--k", type=int, default=2, help="shots for the k-shot baseline")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--rows", type=int, default=8, help="sequences per batch")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not SHARED.exists():
        sys.exit(f"needs the shared datasets at {SHARED}")
    torch.manual_seed(args.seed)
    modes = args.modes.split(",")
    t0 = time.perf_counter()
    data = {m: build(m, args.pairs + args.eval, args.seed) for m in PLANS}  # one tokenizer for any --modes
    domain = [get_mode("domain").compile(x) for x in get_mode("domain").build(TEXT[:1], BuildOptions())]
    tok = train_bpe_tokenizer(
        [render_text(c) for cs in data.values() for c in cs] + [c.text for c in domain], 2048
    )
    cfg = TinyModelConfig(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=2048,
    )
    base = build_tiny_model(cfg, len(tok), args.seed, tok.pad_token_id, tok.eos_token_id)
    loss, sec = train(base, domain, tok, args.pretrain_steps, args.lr, args.seq_len, args.rows)
    print(
        f"base: {sum(p.numel() for p in base.parameters()) / 1e6:.2f}M params, vocab {len(tok)}, "
        f"domain-pretrained {args.pretrain_steps} steps on wiki_demo.txt (loss {loss:.2f}, {sec:.0f}s)",
        flush=True,
    )
    base_state = {k: v.clone() for k, v in base.state_dict().items()}
    results = {}
    for mode in modes:
        m, (_, _, new_tokens) = get_mode(mode), PLANS[mode]
        held, tr = data[mode][: args.eval], data[mode][args.eval :]
        base.load_state_dict(base_state)
        kw = {"max_new_tokens": new_tokens, "max_seq_len": 2048}
        row = {"pairs": len(tr), "held_out": len(held)}
        row["base_zero_shot"] = summarize(score_mode(base, tok, held, m, 0, **kw))
        row["base_k_shot"] = summarize(score_mode(base, tok, held, m, args.k, tr, **kw))
        long_pairs = mode == "diff"  # text + diff + result: ~200 tokens, so longer rows, fewer of them
        seq_len, rows = (2 * args.seq_len, args.rows // 2) if long_pairs else (args.seq_len, args.rows)
        loss, sec = train(base, tr, tok, args.steps, args.lr, seq_len, rows)
        row["tuned"] = summarize(score_mode(base, tok, held, m, 0, **kw))
        row["train"] = {"steps": args.steps, "final_loss": round(loss, 3), "seconds": round(sec)}
        if mode in ("editor", "diff"):
            row["copy_input"] = copy_input(held, mode)
        results[mode] = row
        print(table(mode, m.metrics, row, args.k), flush=True)
    print(f"total {time.perf_counter() - t0:.0f}s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def table(mode: str, metrics: tuple[str, ...], row: dict, k: int) -> str:
    names = [x for x in metrics if x != "eval_loss"]
    t = row["train"]
    lines = [
        f"\n## {mode}  ({row['pairs']} train pairs, {row['held_out']} held out; "
        f"{t['steps']} steps in {t['seconds']}s, final train loss {t['final_loss']})",
        f"{'':16s}" + "".join(f"{n:>26s}" for n in names),
    ]
    for key, label in (
        ("base_zero_shot", "base zero-shot"),
        ("base_k_shot", f"base {k}-shot"),
        ("tuned", "tuned"),
        ("copy_input", "(copy input)"),
    ):
        if key in row:
            cells = [row[key].get(n, {"mean": float("nan"), "low": 0, "high": 0}) for n in names]
            lines.append(
                f"{label:16s}" + "".join(f"{c['mean']:8.3f} [{c['low']:.3f},{c['high']:.3f}]" for c in cells)
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

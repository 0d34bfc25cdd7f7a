"""Score a model on held-out preference pairs: does it prefer the chosen reply, and by how much?

Two measures, per pair, so reports carry bootstrap intervals and the promotion gate can compare two
models pair by pair:

- ``preference_accuracy``: 1 when the model gives the chosen reply a higher log-probability than the
  rejected one (summed over the reply tokens, the prompt rendered exactly as training rendered it),
  else 0. It needs no reference model, so a champion and a challenger are judged on the same terms:
  "prefers the held-out chosen replies more often".
- ``reward_accuracy`` / ``reward_margin``: DPO's implicit reward, ``beta * (log p(reply) - log
  p_ref(reply))``, chosen minus rejected; with no reference the reference term is 0 and the margin
  is ``beta`` times the log-prob margin.

The log-probs are the same numbers training uses (``training.preference_loss.sequence_logps``, checked
equal in the tests): labels -100 outside the reply, shifted by one, float32 log-softmax.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tuneforge.data.files import sha256_file
from tuneforge.data.preference import PreferenceRecord, encode_preference, read_preference_file
from tuneforge.data.trained_format import TrainedFormat
from tuneforge.evaluation.stats import Interval, bootstrap_ci

PREFERENCE_METRICS = ("preference_accuracy", "reward_accuracy", "reward_margin")


def reply_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed log p(label) per row over the positions whose next-token label is not -100."""
    targets = labels[:, 1:]
    mask = targets != -100
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = torch.gather(logp, 2, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(-1)


@torch.no_grad()
def pair_logps(
    model: torch.nn.Module,
    tokenizer: Any,
    records: Sequence[PreferenceRecord],
    fmt: TrainedFormat,
    batch_size: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Summed reply log-probs of (chosen, rejected) for every paired record, in order."""
    rows = []
    for rec in records:
        enc = encode_preference(
            rec, tokenizer, template=fmt.template, max_seq_len=fmt.max_seq_len, truncation="truncate"
        )
        if enc is None:  # cannot happen with truncate; keep the pairing aligned if it ever does
            raise ValueError(f"{rec.source}:{rec.line}: the pair does not fit max_seq_len {fmt.max_seq_len}")
        rows.append(enc)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    chosen: list[float] = []
    rejected: list[float] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        for side, out in (("chosen", chosen), ("rejected", rejected)):
            # Rows come padded to max_seq_len; the columns past the longest real row change nothing.
            width = max(2, max(sum(r[f"{side}_attention_mask"]) for r in chunk))
            ids = torch.tensor([r[f"{side}_input_ids"][:width] for r in chunk], device=device)
            labels = torch.tensor([r[f"{side}_labels"][:width] for r in chunk], device=device)
            mask = torch.tensor([r[f"{side}_attention_mask"][:width] for r in chunk], device=device)
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            logits = logits[:, -ids.shape[1] :]  # prompt/P-tuning prepend virtual-token positions
            out.extend(reply_logps(logits, labels).tolist())
    model.train(was_training)
    return np.asarray(chosen, dtype=np.float64), np.asarray(rejected, dtype=np.float64)


@dataclass
class PreferenceReport:
    """Per-pair scores and their intervals (what ``tuneforge eval --preference`` prints)."""

    n: int
    data_hash: str
    metrics: dict[str, Interval]
    per_example: dict[str, np.ndarray]
    reference: str | None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "data_hash": self.data_hash, "reference": self.reference}
        out.update({name: iv.as_dict() for name, iv in self.metrics.items()})
        return out


def paired_records(path: str | Path) -> list[PreferenceRecord]:
    """The paired records of a preference file (KTO's unpaired replies have no pair to rank)."""
    records = read_preference_file(str(path)).records
    pairs = [r for r in records if r.kind == "paired"]
    if not pairs:
        raise ValueError(f"{path}: no chosen/rejected pairs (unpaired KTO replies cannot be ranked)")
    return pairs


def preference_scores(
    chosen: np.ndarray,
    rejected: np.ndarray,
    ref: tuple[np.ndarray, np.ndarray] | None = None,
    beta: float = 0.1,
) -> dict[str, np.ndarray]:
    """Per-pair metrics from summed log-probs (``ref``: the reference model's, or None)."""
    margin = chosen - rejected
    ref_margin = ref[0] - ref[1] if ref is not None else np.zeros_like(margin)
    reward_margin = beta * (margin - ref_margin)
    return {
        "preference_accuracy": (margin > 0).astype(np.float64),
        "reward_accuracy": (reward_margin > 0).astype(np.float64),
        "reward_margin": reward_margin,
    }


def evaluate_preference(
    model: torch.nn.Module,
    tokenizer: Any,
    data_file: str | Path,
    fmt: TrainedFormat,
    *,
    reference: tuple[torch.nn.Module, str] | None = None,
    beta: float = 0.1,
    seed: int = 0,
) -> PreferenceReport:
    """Score ``model`` (and ``reference``, a model and its name, if given) on every pair of the file."""
    records = paired_records(data_file)
    chosen, rejected = pair_logps(model, tokenizer, records, fmt)
    ref = pair_logps(reference[0], tokenizer, records, fmt) if reference is not None else None
    per = preference_scores(chosen, rejected, ref, beta)
    metrics = {k: bootstrap_ci(v, seed=seed) for k, v in per.items()}
    name = reference[1] if reference else None
    return PreferenceReport(len(records), sha256_file(data_file)[:16], metrics, per, name)

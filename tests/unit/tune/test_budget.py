"""Sweep budget and data-mix block sampling: pure parts, no Ray cluster."""

from __future__ import annotations

import pytest

from tuneforge.distributed.mix_data import mixed_block_indices
from tuneforge.tune.budget import TokenBudgetStopper


def test_token_budget_sums_the_latest_report_of_each_trial() -> None:
    stop = TokenBudgetStopper(100)
    assert not stop("a", {"train_tokens": 30}) and not stop.stop_all()
    stop("a", {"train_tokens": 60})  # cumulative per trial: the latest value counts, not the sum
    stop("b", {"eval_loss": 1.0})  # reports without tokens are ignored
    assert stop.total == 60 and not stop.stop_all()
    stop("b", {"train_tokens": 40})
    assert stop.total == 100 and stop.stop_all()
    with pytest.raises(ValueError, match="max_total_tokens"):
        TokenBudgetStopper(0)


def test_mixed_blocks_follow_the_weights_and_the_seed() -> None:
    blocks = [300, 100]
    even = mixed_block_indices(blocks, [0.5, 0.5], seed=1)
    counts = [len(x) for x in even]
    assert abs(counts[0] - 200) <= 25 and abs(counts[1] - 200) <= 25  # 400 blocks, half each
    assert sorted(set(even[1])) == list(range(100))  # the small source is repeated, every block kept
    assert mixed_block_indices(blocks, [0.5, 0.5], seed=1) == even  # deterministic
    assert mixed_block_indices(blocks, [0.5, 0.5], seed=2) != even
    skewed = [len(x) for x in mixed_block_indices(blocks, [0.9, 0.1], seed=1)]
    assert skewed[0] > 8 * skewed[1]
    natural = mixed_block_indices(blocks, [3.0, 1.0], seed=1)  # weights equal to the natural shares
    assert natural == [list(range(300)), list(range(100))]


def test_max_trials_is_the_budget_name_for_num_samples(tmp_path) -> None:
    from tuneforge.config import ConfigError
    from tuneforge.tune.config import load_sweep

    job = "data: {train_files: [a.jsonl]}\ntrainer: {max_steps: 10, eval_every: 5}\n"
    path = tmp_path / "s.yaml"
    path.write_text(job + "search:\n  max_trials: 3\n  space: {trainer.lr: {loguniform: [1.0e-4, 1.0e-2]}}\n")
    assert load_sweep(path)[1].num_samples == 3
    path.write_text(job + "search:\n  max_trials: 3\n  num_samples: 4\n  space: {trainer.lr: 0.001}\n")
    with pytest.raises(ConfigError, match="max_trials and num_samples"):
        load_sweep(path)

"""Preference scoring: the evaluator's log-probs are training's; the per-pair metrics mean what they say."""

from __future__ import annotations

import numpy as np
import torch

from tuneforge.evaluation.preference import preference_scores, reply_logps
from tuneforge.training.preference_loss import sequence_logps


def test_reply_logps_equal_training_sequence_logps() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11)
    labels = torch.randint(0, 11, (3, 7))
    labels[:, :3] = -100  # the prompt
    labels[1, 5:] = -100  # right padding
    ours = reply_logps(logits, labels)
    train, _ = sequence_logps(logits, labels)
    assert torch.allclose(ours, train, atol=1e-6)


def test_preference_scores_without_and_with_a_reference() -> None:
    chosen = np.array([-3.0, -5.0, -2.0])
    rejected = np.array([-4.0, -4.0, -2.5])
    free = preference_scores(chosen, rejected, beta=0.5)
    assert free["preference_accuracy"].tolist() == [1.0, 0.0, 1.0]
    assert np.allclose(free["reward_margin"], [0.5, -0.5, 0.25])
    # Against a reference whose margins are larger, the implicit reward says the model got worse.
    ref = (np.array([-1.0, -6.0, -1.0]), np.array([-4.0, -4.0, -4.0]))
    scored = preference_scores(chosen, rejected, ref, beta=0.5)
    assert scored["reward_accuracy"].tolist() == [0.0, 1.0, 0.0]
    assert scored["preference_accuracy"].tolist() == free["preference_accuracy"].tolist()

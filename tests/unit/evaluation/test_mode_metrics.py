"""Mode metrics on known cases, the mode -> metrics table, and NaN-aware intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tuneforge.data import Conversation, Message
from tuneforge.evaluation.evaluate import intervals_of
from tuneforge.evaluation.metrics import METRICS, MODE_METRICS, metrics_for_mode, score
from tuneforge.modes import all_modes


def ctx(user: str, *earlier: str) -> Conversation:
    msgs = [Message("user", u) for u in earlier] + [Message("user", user), Message("assistant", "")]
    return Conversation(tuple(msgs))


def test_every_mode_metric_is_registered_and_the_table_comes_from_the_mode_table() -> None:
    for mode in all_modes().values():
        assert set(mode.metrics) <= {*METRICS, "eval_loss"}, mode.name
        assert metrics_for_mode(mode.name) == mode.metrics
    assert metrics_for_mode("chat") == ("eval_loss", "rougeL")
    assert "editor" in MODE_METRICS and len(MODE_METRICS) == 11
    with pytest.raises(ValueError, match="--mode nope: unknown mode; known: instruct, chat"):
        metrics_for_mode("nope")


def test_gleu_and_cer() -> None:
    assert score("gleu", ["the cat sat"], ["the cat sat"])[0] == 1.0
    assert score("gleu", ["dog"], ["the cat sat"])[0] == 0.0
    np.testing.assert_allclose(score("cer", ["abcd", "abc", ""], ["abcd", "abxd", "ab"]), [0.0, 0.5, 1.0])
    assert not METRICS["cer"].higher_is_better


def test_kept_rate_rewards_keeping_what_was_right() -> None:
    c = [ctx("He go to the big school")]
    ref = ["He goes to the big school"]  # 5 of the 6 source words were right
    assert score("kept_rate", ["He goes to the big school"], ref, c)[0] == 1.0
    assert score("kept_rate", ["He goes to a school"], ref, c)[0] == pytest.approx(3 / 5)
    assert math.isnan(score("kept_rate", ["x"], ["totally new"], [ctx("old words")])[0])


def test_schedule_metrics() -> None:
    ref = "1. Boil the water\n2. Add the tea leaves\n3. Wait three minutes"
    preds = [ref, "1. a\n3. b", "Boil water", "1. a\nnot a step"]
    assert score("structure_validity", preds, [ref] * 4).tolist() == [1.0, 0.0, 0.0, 0.0]
    assert score("step_recall", [ref], [ref])[0] == 1.0
    assert score("step_recall", ["1. Boil the water\n2. Drink"], [ref])[0] == pytest.approx(1 / 3)


def test_sentence_precision_recall_f1() -> None:
    ref = "A rains. B snows."
    assert score("sentence_f1", ["A rains. B snows."], [ref])[0] == 1.0
    assert score("sentence_precision", ["A rains. C bakes."], [ref])[0] == 0.5
    assert score("sentence_recall", ["A rains."], [ref])[0] == 0.5
    assert score("sentence_f1", ["A rains."], [ref])[0] == pytest.approx(2 / 3)
    none = "(nothing passes the filters)"
    assert score("sentence_f1", [none, "A rains."], [none, none]).tolist() == [1.0, 0.0]


def test_question_overlap_and_answerability() -> None:
    ref = "1. Where is Paris?\n2. What is the capital of France?"
    assert score("question_overlap", [ref], [ref])[0] == 1.0
    assert score("question_overlap", ["1. Where is Paris?"], [ref])[0] == pytest.approx(
        (1 + score("rougeL", ["Where is Paris?"], ["What is the capital of France?"])[0]) / 2
    )
    assert score("question_overlap", [""], [ref])[0] == 0.0
    c = [ctx("Paris is the capital of France and lies on the Seine.")]
    assert (
        score("answerability", ["1. Which city is the capital of France?\n2. Who won the cup?"], [ref], c)[0]
        == 0.5
    )
    assert score("answerability", ["Paris lies on the Seine."], [ref], c)[0] == 0.0  # not a question


def test_chat_instruct_part_metrics_score_only_their_part() -> None:
    chat, inst = ctx("hello"), ctx("Summarize it.", "### Instruction")
    both = [chat, inst]
    assert score("rougeL_instruct", ["a b", "a b"], ["a b", "a b"], both)[1] == 1.0
    assert math.isnan(score("rougeL_instruct", ["a b", "a b"], ["a b", "a b"], both)[0])
    assert math.isnan(score("rougeL_chat", ["a b", "a b"], ["a b", "a b"], both)[1])


def test_intervals_leave_out_nan_and_survive_all_nan() -> None:
    iv = intervals_of({"m": np.array([1.0, np.nan, 0.0]), "none": np.array([np.nan])})
    assert iv["m"].mean == 0.5 and math.isnan(iv["none"].mean)

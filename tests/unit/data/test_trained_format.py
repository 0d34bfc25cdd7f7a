"""Scoring the way a model was trained: the recorded format round-trips, ``auto`` is resolved against
the real tokenizer, eval loss is token-weighted like training's, and raw text is scored as raw text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tuneforge.config import config_from_dict
from tuneforge.data import Conversation, Message, collate, encode_record, pad_examples, to_model_inputs
from tuneforge.data.trained_format import TrainedFormat, find_format, format_from_job
from tuneforge.distributed.holdout import holdout_record, raw_text_holdout
from tuneforge.evaluation.evaluate import evaluate
from tuneforge.evaluation.stats import ratio_bootstrap_ci
from tuneforge.models.factory import build_tiny_model
from tuneforge.testing import TINY_MODEL, toy_tokenizer

TEXTS = [f"the number {i} comes after {i - 1} and before {i + 1}." for i in range(1, 60)]


@pytest.fixture(scope="module")
def tiny():
    tok = toy_tokenizer()
    model = build_tiny_model(TINY_MODEL, len(tok), 0, tok.pad_token_id, tok.eos_token_id)
    return model.eval(), tok


def test_format_round_trips_and_resolves_auto(tiny, tmp_path: Path) -> None:
    _, tok = tiny
    job = config_from_dict(
        {"data": {"train_files": ["x.jsonl"], "template": "auto", "last_turn_only": True},
         "trainer": {"max_seq_len": 96}}
    )  # fmt: skip
    fmt = format_from_job(job, tok)
    assert fmt.template == "chatml"  # this tokenizer has no chat_template: auto means ChatML here
    assert fmt.max_seq_len == 96 and fmt.last_turn_only
    assert TrainedFormat.from_json(fmt.to_json()) == fmt
    fmt.write(tmp_path)
    assert find_format(tmp_path / "ray" / "x" / "checkpoint_000000") == fmt
    assert find_format(tmp_path.parent / "elsewhere") is None


def test_eval_loss_is_token_weighted_and_raw_text_is_scored_as_raw_text(tiny, tmp_path: Path) -> None:
    model, tok = tiny
    long_text = " ".join(TEXTS[:12])  # several blocks at max_seq_len 32: chunked as in training
    data = tmp_path / "held.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in (long_text, TEXTS[20], TEXTS[30])))
    fmt = TrainedFormat(template="chatml", max_seq_len=32)
    report = evaluate(model, tok, data, ["eval_loss"], fmt=fmt)

    total = count = 0.0
    for text in (long_text, TEXTS[20], TEXTS[30]):
        conv = Conversation((Message("user", text),), mode="pretrain")
        blocks = encode_record(conv, tok, "chatml", 32).examples
        assert len(blocks) > 1 or text != long_text
        for ex in blocks:
            batch = to_model_inputs(collate(pad_examples([ex], len(ex["input_ids"]), tok.pad_token_id)))
            with torch.no_grad():
                out = model(**batch)
            n = float((batch["labels"][:, 1:] != -100).sum())
            total, count = total + float(out.loss) * n, count + n
    assert report.metrics["eval_loss"].mean == pytest.approx(total / count, abs=1e-5)
    per = report.per_example["eval_loss"]
    assert not np.isclose(per.mean(), total / count, atol=1e-4)  # a mean of means would differ


def test_ratio_interval_and_holdout_records() -> None:
    iv = ratio_bootstrap_ci(np.array([2.0, 9.0, 1.0]), np.array([1.0, 3.0, 1.0]))
    assert iv.mean == pytest.approx(12.0 / 5.0) and iv.low <= iv.mean <= iv.high
    raw = Conversation((Message("user", "raw words"),), mode="pretrain")
    assert holdout_record(raw) == {"text": "raw words"}
    chat = Conversation((Message("user", "q"), Message("assistant", "a")))
    assert holdout_record(chat)["messages"][1] == {"role": "assistant", "content": "a"}
    assert holdout_record(Conversation((Message("user", "q"),))) is None
    assert raw_text_holdout(Path("run/eval.jsonl")) == Path("run/eval.text.jsonl")


def test_preview_tokenizer_is_the_runs_tokenizer(tmp_path: Path) -> None:
    """`data preview --config` trains the tiny model's BPE on the same sample a run does."""
    from tuneforge.config import load_config
    from tuneforge.data.plan import TextSample
    from tuneforge.distributed.data_pipeline import build_plan
    from tuneforge.models.base import job_tokenizer, prepare_base
    from tuneforge.models.tokenizer import load_tokenizer

    repo = Path(__file__).resolve().parents[3]
    job = load_config(repo / "jobs/configs/finetune/tiny_cpu.yaml")
    sample = TextSample(job.data.template)  # what a run samples, riding on its one plan pass
    build_plan(job.data, job.trainer.seed, [sample])
    run_texts = sample.texts()
    assert run_texts == build_plan(job.data, job.trainer.seed).sample_texts(job.data.template)
    run_tok = load_tokenizer(prepare_base(job.model, run_texts, tmp_path / "base", 0, tmp_path / "cache"))
    preview_tok = job_tokenizer(job.model, run_texts, tmp_path / "unused", 0, tmp_path / "cache")
    assert preview_tok.get_vocab() == run_tok.get_vocab()
    assert not (tmp_path / "unused").exists()  # no model was built just to get a tokenizer

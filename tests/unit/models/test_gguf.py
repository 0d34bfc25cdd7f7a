"""The real pretrained model offline: GGUF -> cached HF directory with identical logits, the base's own
chat template with exact masks (the end-of-turn token that doubles as pad keeps its label), and
prompts scored in the template the model was trained with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tuneforge.data import Conversation, Message, encode_record, pack_examples, pad_examples, prompt_text
from tuneforge.data.trained_format import TrainedFormat, find_format
from tuneforge.evaluation.evaluate import per_example_loss, split_prompt_reference
from tuneforge.models.gguf import SMOLLM2_REF, SOURCE_FILE, is_gguf, resolve_package_file

QA = Conversation(
    (
        Message("user", "What is the capital of France?"),
        Message("assistant", "The capital of France is Paris."),
        Message("user", "And of Italy?"),
        Message("assistant", "Rome."),
    )
)


@pytest.fixture(scope="module")
def tok(smollm2_dir: Path):
    return AutoTokenizer.from_pretrained(smollm2_dir)


def test_gguf_converts_once_and_reloads_with_identical_logits(smollm2_dir: Path) -> None:
    gguf = resolve_package_file(SMOLLM2_REF)
    assert is_gguf(gguf)
    source = json.loads((smollm2_dir / SOURCE_FILE).read_text())
    assert source["gguf_file"] == gguf.name and smollm2_dir.name == f"gguf-{source['sha256'][:16]}"
    assert list(smollm2_dir.glob("*.safetensors")) and not list(smollm2_dir.glob("*.bin"))

    direct = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    converted = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32)
    assert converted.config.num_hidden_layers == 30 and converted.config.hidden_size == 576
    assert converted.config.tie_word_embeddings
    assert sum(p.numel() for p in converted.parameters()) == 134_515_008
    gguf_tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    conv_tok = AutoTokenizer.from_pretrained(smollm2_dir)
    text = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    ids = gguf_tok(text, return_tensors="pt")["input_ids"]
    assert torch.equal(ids, conv_tok(text, return_tensors="pt")["input_ids"])
    with torch.no_grad():
        assert torch.equal(direct.eval()(ids).logits, converted.eval()(ids).logits)
        out = converted.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=conv_tok.pad_token_id)
    assert conv_tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True).startswith(
        "The capital of France is Paris."
    )


def test_template_masks_train_answers_and_their_end_token(tok) -> None:
    """pad == eos (<|im_end|>) here: a pad-id mask would drop every end-of-turn label."""
    assert tok.pad_token_id == tok.eos_token_id
    ex = encode_record(QA, tok, "auto", None).examples[0]  # auto -> the tokenizer's own template
    trained = [i for i, label in zip(ex["input_ids"], ex["labels"], strict=True) if label != -100]
    assert tok.decode(trained) == "The capital of France is Paris.<|im_end|>Rome.<|im_end|>"
    full = tok.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in QA.messages], tokenize=False
    )
    assert tok.decode(ex["input_ids"]) == full  # the base's own rendering, default system prompt included
    for rows in (pack_examples([ex, ex], 256, tok.pad_token_id), pad_examples([ex], 256, tok.pad_token_id)):
        labels = torch.tensor(rows[0]["labels"])
        assert int((labels == tok.eos_token_id).sum()) >= 2  # every trained end-of-turn keeps its label


def test_prompts_and_loss_use_the_trained_template(smollm2_dir: Path, tok, tmp_path: Path) -> None:
    prompt, ref = split_prompt_reference(QA, tok, "tokenizer")
    history = [{"role": m.role, "content": m.content} for m in QA.messages[:-1]]
    assert prompt == tok.apply_chat_template(history, tokenize=False, add_generation_prompt=True)
    assert ref == "Rome." and prompt_text(QA, tok, "chatml").startswith("<|im_start|>user\n")

    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32)
    own = per_example_loss(model, tok, [QA], fmt=TrainedFormat(template="tokenizer"))[0]
    chatml = per_example_loss(model, tok, [QA], fmt=TrainedFormat(template="chatml"))[0]
    assert own != pytest.approx(chatml, abs=1e-3)  # the template changes the score: it must be recorded

    TrainedFormat(template="tokenizer", max_seq_len=128).write(tmp_path)
    ckpt = tmp_path / "ray" / "run" / "checkpoint_000001"
    ckpt.mkdir(parents=True)
    assert find_format(ckpt) == TrainedFormat(template="tokenizer", max_seq_len=128)


def test_data_preview_with_the_jobs_real_tokenizer_and_template(smollm2_dir: Path) -> None:
    """`data preview --config JOB` shows the masks the run will train with, and starts nothing."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[3]
    cmd = [str(Path(sys.executable).parent / "tuneforge"), "data", "preview", "--config",
           "jobs/configs/finetune/smollm2_lora_cpu.yaml", "-n", "1", "--markers", "--json"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "template tokenizer, max_seq_len 256" in proc.stdout
    assert "<|im_start|>assistant\n⟦Yes, you can have" in proc.stdout
    assert "about 200 calories.<|im_end|>⟧" in proc.stdout  # the end-of-turn token is trained
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    assert stats["records"] == 159 and 0 < stats["trained_tokens"] < stats["tokens"]

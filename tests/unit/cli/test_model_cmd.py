"""``tuneforge generate`` / ``tuneforge export`` through the real entry point, on tiny saved models.

Adapters are created untrained with randomised weights (peft initialises LoRA B to zero, which would
make 'adapter == base' trivially true); training under DeepSpeed is covered by the methods matrix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tuneforge.config import IA3Method, LoraMethod, PrefixTuningMethod
from tuneforge.models.factory import build_tiny_model
from tuneforge.models.generation import build_prompt, generate, load_for_inference
from tuneforge.models.io import save_hf
from tuneforge.models.methods import apply_method
from tuneforge.testing import TINY_MODEL, toy_tokenizer

EXE = str(Path(sys.executable).parent / "tuneforge")


def _run(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TUNEFORGE_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([EXE, *args], env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    tok = toy_tokenizer()
    base = build_tiny_model(
        TINY_MODEL, len(tok), seed=0, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id
    )
    base_dir = save_hf(base, tok, root / "base")
    dirs = {"base": base_dir}
    for name, method in {
        "lora": LoraMethod(r=4),
        "ia3": IA3Method(),
        "prefix": PrefixTuningMethod(num_virtual_tokens=3),
    }.items():
        model, _ = load_for_inference(base_dir)
        model = apply_method(model, method)
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(1)
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(torch.randn_like(p) * 0.2)
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        dirs[name] = root / name
    return dirs


def test_build_prompt_styles():
    assert build_prompt("hi", "raw") == "hi"
    assert build_prompt("hi", "chat") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert build_prompt("hi", "instruct") == build_prompt("hi", "chat")  # Alpaca trains as a user turn
    with pytest.raises(ValueError, match="unknown prompt style"):
        build_prompt("hi", "poem")


def test_batched_left_padded_generation_equals_single(models):
    model, tok = load_for_inference(models["prefix"])
    batch = generate(model, tok, ["hello world 3", "hi"], max_new_tokens=4)
    singles = [generate(model, tok, [p], max_new_tokens=4)[0] for p in ["hello world 3", "hi"]]
    assert batch[0] == singles[0]  # the longest row has no padding: must match exactly
    assert len(batch) == 2


def test_generate_cli_json_for_base_and_adapter(models, tmp_path):
    outs = {}
    for name in ("base", "lora"):
        args = ["generate", str(models[name]), "--prompt", "hello world 3", "--max-new-tokens", "5", "--json"]
        out = _run(*args, home=tmp_path)
        assert out.returncode == 0, out.stderr
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        assert summary["prompt_style"] == "chat" and summary["completions"][0]["prompt"] == "hello world 3"
        outs[name] = summary["completions"][0]["completion"]
    model, tok = load_for_inference(models["lora"])
    assert outs["lora"] == generate(model, tok, ["hello world 3"], max_new_tokens=5)[0]


@pytest.mark.parametrize("name", ["lora", "ia3"])
def test_export_merge_equals_adapter(models, tmp_path, name):
    out = _run(
        "export", str(models[name]), "--merge", "--out", str(tmp_path / "merged"), "--json", home=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["kind"] == "merged"
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    merged, _ = load_for_inference(tmp_path / "merged")
    adapter, _ = load_for_inference(models[name])
    ids = torch.randint(0, 250, (1, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, adapter(input_ids=ids).logits, atol=1e-5)


def test_export_prompt_learning_merge_is_an_error_but_copy_works(models, tmp_path):
    out = _run("export", str(models["prefix"]), "--merge", "--out", str(tmp_path / "m"), home=tmp_path)
    assert out.returncode == 1
    assert "PREFIX_TUNING adapter cannot be merged" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    out = _run("export", str(models["prefix"]), "--out", str(tmp_path / "copy"), home=tmp_path)
    assert out.returncode == 0, out.stderr
    cfg = json.loads((tmp_path / "copy" / "adapter_config.json").read_text())
    assert Path(cfg["base_model_name_or_path"]).resolve() == Path(models["base"]).resolve()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["generate", "/no/such/model", "--prompt", "x"],
            "/no/such/model: no such checkpoint or run directory",
        ),
        (
            ["generate", "BASE", "--prompt", "x", "--prompt-style", "poem"],
            "--prompt-style: unknown prompt style 'poem'",
        ),
        (["export", "/no/such/ckpt", "--out", "OUT"], "/no/such/ckpt: no such checkpoint or run directory"),
        (["export", "BASE", "--out", "BASE"], "directory exists and is not empty"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(models, tmp_path, args, message):
    args = [a.replace("BASE", str(models["base"])).replace("OUT", str(tmp_path / "o")) for a in args]
    out = _run(*args, home=tmp_path)
    assert out.returncode == 1
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_find_checkpoint_in_run_dir_takes_newest(models, tmp_path):
    import os
    import shutil

    from tuneforge.models.export import ExportError, find_checkpoint

    run = tmp_path / "run"
    for i, name in enumerate(["checkpoint_000000", "checkpoint_000001"]):
        shutil.copytree(models["lora"], run / "ray" / "trial" / name)
        os.utime(run / "ray" / "trial" / name, (1_000 + i, 1_000 + i))
    assert find_checkpoint(run).name == "checkpoint_000001"
    assert find_checkpoint(models["base"]) == models["base"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="holds no model"):
        find_checkpoint(tmp_path / "empty")

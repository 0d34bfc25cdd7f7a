"""tuneforge.tracking against a real MLflow sqlite store in tmp_path (no mocks, no network)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from tuneforge.paths import tuneforge_home
from tuneforge.tracking import (
    download_adapter,
    end_run,
    load_hf_model,
    log_dict_artifact,
    log_hf_model,
    log_metrics,
    log_params_flat,
    register_model,
    resolve_tracking_uri,
    start_run,
    ui_command,
)

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "fine-tuning small language models on a laptop",
    "hello world, hello tuneforge",
] * 5
INPUT_TEXT = "the quick brown fox says hello"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh TUNEFORGE_HOME and its default sqlite store; the process's MLflow state is reset after."""
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path / "home"))
    # setenv (not delenv) so monkeypatch restores the variable that start_run's set_tracking_uri writes.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    uri = resolve_tracking_uri(None)
    yield uri
    mlflow.end_run()
    mlflow.set_tracking_uri(None)


def _tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<pad>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(SENTENCES, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>")


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete tiny HF model directory (Llama weights + BPE tokenizer), built once."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4
    )
    path = tmp_path_factory.mktemp("base")
    LlamaForCausalLM(config).save_pretrained(path)
    _tokenizer().save_pretrained(path)
    return path


def _logits(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=input_ids).logits


def _input_ids(tokenizer) -> torch.Tensor:
    return torch.tensor([tokenizer(INPUT_TEXT)["input_ids"]])


def test_resolve_tracking_uri_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("TUNEFORGE_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    default = resolve_tracking_uri(None)
    assert default == f"sqlite:///{home}/mlflow.db"
    assert default.startswith("sqlite:////")
    assert tuneforge_home() == home and home.is_dir()

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_tracking_uri(None) == "http://127.0.0.1:5000"
    assert resolve_tracking_uri("sqlite:////data/x.db") == "sqlite:////data/x.db"

    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri("sqlite:///rel/x.db") == f"sqlite:///{tmp_path.resolve()}/rel/x.db"


def test_tuneforge_home_defaults_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNEFORGE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tuneforge_home() == tmp_path.resolve() / ".tuneforge"


def test_ui_command() -> None:
    uri = "sqlite:////abs/.tuneforge/mlflow.db"
    assert ui_command(uri) == f"mlflow ui --backend-store-uri {uri}"
    assert ui_command("http://mlflow.internal:5000") == "http://mlflow.internal:5000"
    assert "s3cret" not in ui_command("postgresql://me:s3cret@db:5432/mlflow")


def test_run_params_metrics(store: str) -> None:
    run_id = start_run(store, "exp", "run-1", tags={"model": "tiny"})
    params = {"trainer": {"lr": 1e-4, "epochs": 2, "extra": {}}, "data": {"files": ["a", "b"]}}
    params["long"] = "x" * (MAX_PARAM_VAL_LENGTH + 10)
    params["many"] = {f"k{i}": i for i in range(150)}  # more than one batch of 100
    log_params_flat(run_id, params)
    for step in range(3):
        log_metrics(store, run_id, {"train/loss": 3.0 - step, "bad": math.nan, "worse": math.inf}, step)
    log_dict_artifact(run_id, {"seed": 0}, "config/run.json")
    end_run("FINISHED")

    client = mlflow.MlflowClient(store)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "run-1"
    assert run.data.tags["model"] == "tiny"
    got = run.data.params
    assert got["trainer.lr"] == "0.0001" and got["trainer.epochs"] == "2"
    assert got["trainer.extra"] == "{}" and got["data.files"] == '["a", "b"]'
    assert got["many.k149"] == "149"
    assert len(got["long"]) <= MAX_PARAM_VAL_LENGTH and got["long"].endswith("chars]")
    history = client.get_metric_history(run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(0, 3.0), (1, 2.0), (2, 1.0)]
    assert "bad" not in run.data.metrics and "worse" not in run.data.metrics

    # Artifacts sit next to the database, not in ./mlruns.
    home = tuneforge_home()
    experiment = client.get_experiment_by_name("exp")
    assert experiment.artifact_location == (home / "artifacts").as_uri()
    assert json.loads((home / "artifacts" / run_id / "artifacts" / "config" / "run.json").read_text()) == {
        "seed": 0
    }
    # A second run reuses the experiment.
    second = start_run(store, "exp", None)
    assert client.get_run(second).info.experiment_id == experiment.experiment_id


def test_full_model_round_trip_and_alias(store: str, base_dir: Path, tmp_path: Path) -> None:
    original = AutoModelForCausalLM.from_pretrained(base_dir)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(base_dir)
    input_ids = _input_ids(tokenizer)
    expected = _logits(original, input_ids)

    run_id = start_run(store, "exp", "full")
    logged = log_hf_model(run_id, base_dir, registered_model_name="m", tags={"method": "full"})
    end_run()
    assert logged.registered_name == "m" and logged.version == "1"
    assert logged.model_uri.startswith("models:/m-")

    client = mlflow.MlflowClient(store)
    assert client.get_model_version("m", "1").tags["method"] == "full"
    local = Path(mlflow.artifacts.download_artifacts(logged.model_uri, dst_path=str(tmp_path)))
    requirements = (local / "requirements.txt").read_text().split()
    assert {r.split("==")[0] for r in requirements} >= {"torch", "transformers", "tokenizers", "safetensors"}

    model, loaded_tokenizer = load_hf_model("models:/m/1")
    assert not model.training
    assert torch.allclose(_logits(model, input_ids), expected, atol=1e-6)
    assert loaded_tokenizer(INPUT_TEXT)["input_ids"] == tokenizer(INPUT_TEXT)["input_ids"]
    assert loaded_tokenizer.pad_token == "<pad>" and loaded_tokenizer.eos_token == "</s>"

    client.set_registered_model_alias("m", "champion", "1")
    for uri in ("models:/m@champion", f"runs:/{run_id}/model", logged.model_uri):
        other, _ = load_hf_model(uri)
        assert torch.allclose(_logits(other, input_ids), expected, atol=1e-6), uri

    # Log now, register later: a second version of the same name.
    assert register_model(logged.model_uri, "m", tags={"note": "again"}) == "2"

    # A stored model that lost a weight is refused, not silently re-initialised.
    model_id = logged.model_uri.removeprefix("models:/")
    weights = tuneforge_home() / "artifacts" / "models" / model_id / "artifacts" / "model"
    weights = weights / "model.safetensors"
    tensors = load_file(weights)
    del tensors["model.norm.weight"]
    save_file(tensors, weights, metadata={"format": "pt"})
    with pytest.raises(ValueError, match="missing_keys"):
        load_hf_model("models:/m/2")


def test_lora_round_trip(store: str, base_dir: Path, tmp_path: Path) -> None:
    tokenizer = PreTrainedTokenizerFast.from_pretrained(base_dir)
    input_ids = _input_ids(tokenizer)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.normal_(0.0, 0.2)  # lora_B starts at zero: make the adapter actually matter
    expected = _logits(peft_model, input_ids)
    assert not torch.allclose(expected, _logits(AutoModelForCausalLM.from_pretrained(base_dir), input_ids))

    adapter_dir, merged_dir = tmp_path / "adapter", tmp_path / "merged"
    peft_model.save_pretrained(adapter_dir)
    copy.deepcopy(peft_model).merge_and_unload().save_pretrained(merged_dir)
    tokenizer.save_pretrained(merged_dir)

    run_id = start_run(store, "exp", "lora")
    logged = log_hf_model(run_id, merged_dir, registered_model_name="m-lora", adapter_dir=adapter_dir)
    end_run()
    assert logged.version == "1"

    model, _ = load_hf_model("models:/m-lora/1")
    assert torch.allclose(_logits(model, input_ids), expected, atol=1e-5)

    adapter = download_adapter("models:/m-lora/1", tmp_path / "downloaded")
    readme = json.loads((adapter / "README.json").read_text())
    assert readme["base_model_name_or_path"] == str(base_dir)
    reapplied = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter)
    assert torch.allclose(_logits(reapplied, input_ids), expected, atol=1e-5)

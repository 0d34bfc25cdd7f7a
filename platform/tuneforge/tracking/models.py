"""Log, register and load fine-tuned Hugging Face causal LMs with MLflow's ``transformers`` flavor.

Layout of a logged model (an MLflow 3 LoggedModel, ``models:/m-<id>``)::

    MLmodel, requirements.txt, ...   transformers + python_function flavors, task text-generation
    model/                           full weights (safetensors) and config, always stored
    components/tokenizer/            tokenizer files
    adapter/                         LoRA only: the raw PEFT adapter + README.json naming its base

Why these choices (checked against mlflow 3.17.2 / transformers 5.23 / peft 0.21):

* The flavor's "log from a local checkpoint path" mode crashes on transformers 5
  (``check_task`` returns a class name, not a class), so the directory is loaded into memory and
  logged as a ``{"model", "tokenizer"}`` dict; ``save_pretrained`` then stores the weights in the
  artifact, which round-trips bit-exactly.
* For LoRA the caller logs the *merged* model: a logged ``PeftModel`` whose base is not on a hub
  is silently re-initialised on load. The adapter rides along under ``adapter/`` for users who
  want to re-apply it to their own copy of the base.
* ``pip_requirements`` are explicit: inference pulls in torchvision and fails.
* Loading does not use ``mlflow.transformers.load_model``: it may set ``trust_remote_code=True``
  for architectures unknown to transformers, and does not report weights that were missing and
  therefore randomly initialised. :func:`load_hf_model` refuses both.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import TYPE_CHECKING, cast

import mlflow
from mlflow.models import Model
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TASK = "text-generation"
MODEL_NAME = "model"
ADAPTER_PATH = "adapter"
ADAPTER_README = "README.json"
_RUNTIME_PACKAGES = ("torch", "transformers", "tokenizers", "safetensors")
# Entries of transformers' loading info that mean some weight was not loaded as saved.
_LOAD_PROBLEMS = ("missing_keys", "mismatched_keys", "error_msgs", "conversion_errors")


@dataclass(frozen=True)
class LoggedModel:
    """Where a logged model can be loaded from, and its registry entry if it was registered."""

    model_uri: str
    registered_name: str | None
    version: str | None


def pip_requirements() -> list[str]:
    """Pins of the packages needed to run the model, at the versions that produced it.

    Local version labels (``2.13.0+cpu``) are dropped: they name a build, not a release on PyPI.
    """
    return [f"{name}=={installed_version(name).split('+')[0]}" for name in _RUNTIME_PACKAGES]


def _architecture(model_dir: Path) -> str:
    """The model class named in ``config.json``; must be built into transformers (no remote code)."""
    import transformers

    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{model_dir} is not a Hugging Face model directory (no config.json)")
    architectures = json.loads(config_file.read_text()).get("architectures") or []
    if len(architectures) != 1 or not hasattr(transformers, architectures[0]):
        raise ValueError(
            f"{config_file}: expected one architecture built into transformers, got {architectures}"
        )
    return architectures[0]


def _adapter_readme(adapter_dir: Path) -> dict[str, str]:
    """What a reader of ``adapter/`` needs: which base it applies to, and how to apply it."""
    config_file = adapter_dir / "adapter_config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{adapter_dir} is not a PEFT adapter directory (no adapter_config.json)")
    config = json.loads(config_file.read_text())
    return {
        "base_model_name_or_path": str(config.get("base_model_name_or_path")),
        "peft_type": str(config.get("peft_type")),
        "merged_into": f"../{MODEL_NAME}/ (the weights this model serves are base + adapter, merged)",
        "usage": "PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(<base>), <this dir>)",
    }


def register_model(model_uri: str, name: str, tags: dict[str, str] | None = None) -> str:
    """Register ``model_uri`` under ``name`` (created if new) and return the new version number."""
    return str(mlflow.register_model(model_uri, name, tags=tags).version)


def log_hf_model(
    run_id: str,
    model_dir: Path,
    *,
    registered_model_name: str | None,
    adapter_dir: Path | None = None,
    tags: dict[str, str] | None = None,
) -> LoggedModel:
    """Log a complete HF model directory (weights + tokenizer) to ``run_id``; register it if named.

    ``model_dir`` must hold full weights; for LoRA pass the merged model here and the raw adapter
    as ``adapter_dir``. ``tags`` go on the LoggedModel and on the registered version. Uses the
    current tracking URI (set by :func:`tuneforge.tracking.start_run`). The model is loaded into
    memory once, on CPU, to be serialised.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    _architecture(model_dir)
    readme = _adapter_readme(Path(adapter_dir)) if adapter_dir is not None else None
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto", trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    info = mlflow.transformers.log_model(
        {"model": model, "tokenizer": tokenizer},
        name=MODEL_NAME,
        task=TASK,
        pip_requirements=pip_requirements(),
        save_pretrained=True,
        run_id=run_id,
        tags=tags,
    )

    if adapter_dir is not None and readme is not None:
        client = mlflow.MlflowClient()
        client.log_model_artifacts(info.model_id, str(adapter_dir), ADAPTER_PATH)
        with tempfile.TemporaryDirectory() as tmp:
            readme_file = Path(tmp) / ADAPTER_README
            readme_file.write_text(json.dumps(readme, indent=2) + "\n")
            client.log_model_artifact(info.model_id, str(readme_file), ADAPTER_PATH)

    version = register_model(info.model_uri, registered_model_name, tags) if registered_model_name else None
    return LoggedModel(model_uri=info.model_uri, registered_name=registered_model_name, version=version)


def download_adapter(model_uri: str, dst_dir: Path) -> Path:
    """Download the ``adapter/`` of a model logged with ``adapter_dir``; returns its local path.

    Goes through the artifact repository because ``models:/`` URIs take no sub-path.
    """
    dst_dir = Path(dst_dir)
    dst_dir.mkdir(parents=True, exist_ok=True)
    return Path(get_artifact_repository(model_uri).download_artifacts(ADAPTER_PATH, str(dst_dir)))


def load_hf_model(model_uri: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a model logged by :func:`log_hf_model` as a plain transformers model (eval) + tokenizer.

    ``model_uri`` is any MLflow model URI: ``runs:/<run_id>/model``, ``models:/m-<id>``,
    ``models:/NAME/VERSION``, ``models:/NAME@alias``. Raises if any weight would be freshly
    initialised instead of loaded, or if the model would need remote code.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
        flavor = Model.load(str(local)).flavors.get("transformers")
        if flavor is None:
            raise ValueError(f"{model_uri} was not logged with the transformers flavor")
        weights_dir = local / flavor.get("model_binary", MODEL_NAME)
        _architecture(weights_dir)
        # transformers' overloads ignore output_loading_info=True, which returns (model, loading info)
        model, loading = cast(
            "tuple[PreTrainedModel, dict[str, list[str]]]",
            AutoModelForCausalLM.from_pretrained(
                weights_dir, dtype="auto", trust_remote_code=False, output_loading_info=True
            ),
        )
        problems = {kind: loading[kind] for kind in _LOAD_PROBLEMS if loading.get(kind)}
        if problems:
            raise ValueError(f"{model_uri}: weights not loaded exactly: {problems}")
        tokenizer = AutoTokenizer.from_pretrained(local / "components" / "tokenizer", trust_remote_code=False)
    model.eval()
    return model, tokenizer

"""Turn what a user types as MODEL into a loaded model.

Accepted: a local HF model directory, a local PEFT adapter directory (its base is read from
``adapter_config.json``), an MLflow run id, ``runs:/...`` and ``models:/NAME/VERSION`` or
``models:/NAME@alias``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneforge.data.trained_format import FORMAT_TAG, TrainedFormat, find_format

if TYPE_CHECKING:
    from tuneforge.tracking import TrackingClient

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def normalise_ref(ref: str) -> str:
    """A bare 32-hex run id becomes ``runs:/<id>/model`` (the name tuneforge logs models under)."""
    return f"runs:/{ref}/model" if _RUN_ID.match(ref) and not Path(ref).exists() else ref


def load_model_ref(ref: str, trust_remote_code: bool = False) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) for any accepted reference; clear errors otherwise."""
    from transformers import AutoModelForCausalLM

    from tuneforge.models.io import load_adapter_model
    from tuneforge.models.tokenizer import load_tokenizer

    ref = normalise_ref(ref)
    if ref.startswith(("models:/", "runs:/")):
        from tuneforge.tracking import load_hf_model

        return load_hf_model(ref)
    path = Path(ref)
    if (path / "adapter_config.json").exists():
        base = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if not base or not Path(base).exists():
            raise FileNotFoundError(
                f"{path}/adapter_config.json: base_model_name_or_path '{base}' is not a local dir"
            )
        tok_dir = path if (path / "tokenizer_config.json").exists() else Path(base)
        return load_adapter_model(base, path, trust_remote_code), load_tokenizer(tok_dir, trust_remote_code)
    if (path / "config.json").exists():
        model = AutoModelForCausalLM.from_pretrained(str(path), trust_remote_code=trust_remote_code).eval()
        return model, load_tokenizer(path, trust_remote_code)
    raise FileNotFoundError(
        f"{ref}: not a model directory, run id, runs:/ or models:/ URI (tuneforge never downloads models)"
    )


def format_for_ref(ref: str, tracking_uri: str | None = None) -> TrainedFormat | None:
    """How the model behind ``ref`` was trained (template, length, masks), or None if unrecorded.

    Registered versions and runs carry it as the ``tuneforge.format`` tag; local checkpoint and
    export directories carry ``tuneforge_format.json`` (in the directory or a run directory above).
    """
    ref = normalise_ref(ref)
    if ref.startswith(("models:/", "runs:/")):
        from tuneforge.tracking import TrackingClient

        tags = _ref_tags(TrackingClient(tracking_uri), ref)
        if tags is None:
            return None
        text = tags.get(FORMAT_TAG)
        return TrainedFormat.from_json(text) if text else None
    return find_format(ref)


def _ref_tags(client: TrackingClient, ref: str) -> dict[str, str] | None:
    """The tags that describe ``ref``: a registered version's, or a run's; None when it is not there."""
    if ref.startswith("runs:/"):
        run = client.find_run(ref.removeprefix("runs:/").split("/", 1)[0])
        return run.tags if run is not None else None
    body = ref.removeprefix("models:/")
    if "@" in body:
        found = client.version_by_alias(*body.split("@", 1))
        return found.tags if found is not None else None
    name, _, version = body.rpartition("/")
    if not version.isdigit():
        return {}
    found = client.version(name, version)
    return found.tags if found is not None else None

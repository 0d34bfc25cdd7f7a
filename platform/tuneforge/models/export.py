"""Export a trained checkpoint: merge mergeable adapters into a plain HF model, or copy it standalone.

* LoRA/DoRA/QLoRA/IA3 adapters ``--merge`` into their base (``merge_and_unload``) and come out as a plain
  HF model that needs neither peft nor the base directory;
* prompt/prefix/P-tuning adapters cannot be merged: their trained weights are virtual tokens or
  key/value prefixes, not deltas of base weights; they are copied with an absolute base reference;
* full/freeze checkpoints already are full HF models and are copied.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from tuneforge.data.trained_format import find_format
from tuneforge.models.generation import adapter_base, is_adapter_dir
from tuneforge.models.io import atomic_dir, merge_adapter


class ExportError(ValueError):
    """Bad export request (wrong source, non-mergeable method, existing output); one line for the CLI."""


#: peft types whose weights fold into the base weights
MERGEABLE_PEFT_TYPES = frozenset({"LORA", "IA3"})


@dataclass
class ExportResult:
    """What ``export`` wrote (printed as JSON by the CLI)."""

    source: str
    out: str
    kind: str  # "merged" | "adapter" | "full"
    peft_type: str | None
    base: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def peft_type_of(adapter_dir: str | Path) -> str:
    """``LORA``, ``IA3``, ``PROMPT_TUNING``, ``PREFIX_TUNING``, ``P_TUNING``... from adapter_config.json."""
    return str(json.loads((Path(adapter_dir) / "adapter_config.json").read_text()).get("peft_type"))


def find_checkpoint(path: str | Path) -> Path:
    """A model/adapter directory as given, or the newest ``checkpoint_*`` inside a run directory."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint or run directory")
    if is_adapter_dir(path) or (path / "config.json").is_file():
        return path
    candidates = [
        p
        for p in path.rglob("checkpoint_*")
        if p.is_dir() and (is_adapter_dir(p) or (p / "config.json").is_file())
    ]
    if not candidates:
        raise ExportError(f"{path}: holds no model, adapter or checkpoint_* directory")
    return max(candidates, key=lambda p: (p.stat().st_mtime, p.name))


def export_model(source: str | Path, out: str | Path, merge: bool) -> ExportResult:
    """Write ``source`` (checkpoint or run dir) to ``out`` as a standalone model or adapter.

    The run's trained format (template, length, masks) goes with it, so the export is scored and
    prompted the way it was trained wherever it is copied.
    """
    ckpt = find_checkpoint(source)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"--out {out}: directory exists and is not empty")
    result = _export(ckpt, out, merge)
    fmt = find_format(ckpt)
    if fmt is not None:
        fmt.write(out)
    return result


def _export(ckpt: Path, out: Path, merge: bool) -> ExportResult:
    if not is_adapter_dir(ckpt):
        _copy(ckpt, out)
        return ExportResult(str(ckpt), str(out), "full", None, None)
    peft_type = peft_type_of(ckpt)
    base = adapter_base(ckpt)
    if merge:
        if peft_type not in MERGEABLE_PEFT_TYPES:
            raise ExportError(
                f"--merge: a {peft_type} adapter cannot be merged (its trained weights are virtual tokens "
                "or key/value prefixes, not changes to base weights); export without --merge to copy it"
            )
        merge_adapter(base, ckpt, out)
        return ExportResult(str(ckpt), str(out), "merged", peft_type, str(base))
    _copy(ckpt, out)
    cfg_file = out / "adapter_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["base_model_name_or_path"] = str(base)  # absolute: the copy may live anywhere
    cfg_file.write_text(json.dumps(cfg, indent=2) + "\n")
    return ExportResult(str(ckpt), str(out), "adapter", peft_type, str(base))


def _copy(src: Path, out: Path) -> None:
    with atomic_dir(out) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)

"""Text generation with any trained model: base, full/freeze checkpoints, and every peft method.

Choices, each forced by a trap measured on peft 0.21 / transformers 5.23 (see FACTS.md):

* **default dynamic cache**: prefix tuning breaks with ``use_cache=False`` (shape error) and prompt,
  P- and prefix tuning break with ``cache_implementation="static"``; so neither is ever passed;
* **left padding** for batches, so every row's last prompt token sits at the end and new tokens are
  appended right after it (right padding would make rows continue from pad tokens);
* **prompts rendered like training**, by *prompt style* (not a tuning mode): ``chat`` and
  ``instruct`` wrap the text as a user turn in the template the model was trained with
  (``tuneforge_format.json`` of its run; the tokenizer's own template for a base that has one; Alpaca
  records are trained as exactly such a user turn), ``raw`` passes the text as is;
* **greedy decoding**: reproducible answers for checks and demos.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from tuneforge.data import Conversation, Message, prompt_text, render_prompt
from tuneforge.models.tokenizer import load_tokenizer

#: How a prompt is rendered before generation (not a tuning mode: those are ``tuneforge.modes``).
PromptStyle = Literal["chat", "instruct", "raw"]
PROMPT_STYLES: tuple[str, ...] = ("chat", "instruct", "raw")


def build_prompt(text: str, style: str = "chat", template: str = "chatml", tokenizer: Any = None) -> str:
    """The exact string the model sees for ``text`` in prompt style ``style``.

    With a ``tokenizer``, ``template`` may be ``tokenizer``/``auto`` (the model's own chat template).
    """
    if style == "raw":
        return text
    if style in ("chat", "instruct"):
        if tokenizer is not None:
            return prompt_text(Conversation((Message("user", text),)), tokenizer, template)
        return render_prompt([Message("user", text)], template)
    raise ValueError(f"unknown prompt style {style!r}; expected one of {', '.join(PROMPT_STYLES)}")


@torch.no_grad()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int = 32,
    style: str = "chat",
    template: str = "chatml",
) -> list[str]:
    """Greedy completions for ``prompts`` (one batch, left padded); returns only the new text."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1 (got {max_new_tokens})")
    texts = [build_prompt(p, style, template, tokenizer) for p in prompts]
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=(style == "raw"))
    finally:
        tokenizer.padding_side = old_side
    device = next(model.parameters()).device
    input_ids, attention_mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
    was_training = model.training
    model.eval()
    try:
        out = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    finally:
        model.train(was_training)
    new_tokens = out[:, input_ids.shape[1] :]
    return [tokenizer.decode(row, skip_special_tokens=True) for row in new_tokens]


def adapter_base(adapter_dir: str | Path) -> Path:
    """The local base directory an adapter was trained on (``base_model_name_or_path``).

    A relative path is resolved against the adapter directory. Never a hub id: nothing is downloaded.
    """
    adapter_dir = Path(adapter_dir)
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{adapter_dir}/adapter_config.json: base_model_name_or_path is empty")
    path = Path(base)
    if not path.is_absolute():
        path = (adapter_dir / path).resolve()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{adapter_dir}: the adapter's base model '{base}' is not a local Hugging Face directory"
        )
    return path


def is_adapter_dir(path: str | Path) -> bool:
    """A PEFT adapter directory (as opposed to a full HF model directory)."""
    return (Path(path) / "adapter_config.json").is_file()


def load_for_inference(
    path: str | Path, base: str | Path | None = None, device: str | torch.device = "cpu"
) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) from a full HF directory or a PEFT adapter directory.

    Adapters are applied to ``base`` or, by default, to the base recorded in ``adapter_config.json``;
    the tokenizer comes from the given directory if it holds one, else from the base. fp32 on CPU.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such model directory")
    dtype = torch.float32 if str(device) == "cpu" else "auto"
    model: torch.nn.Module  # a transformers model, or a PeftModel around one
    if is_adapter_dir(path):
        base_dir = Path(base) if base is not None else adapter_base(path)
        base_model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=dtype)
        model = PeftModel.from_pretrained(base_model, str(path))
        tok_dir = path if (path / "tokenizer_config.json").is_file() else base_dir
    elif (path / "config.json").is_file():
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
        tok_dir = path
    else:
        raise FileNotFoundError(
            f"{path}: not a Hugging Face model (config.json) or PEFT adapter (adapter_config.json) directory"
        )
    # transformers declares PreTrainedModel.to with @wraps(nn.Module.to), which its typing turns into a
    # wrapper that wants the model as the first argument; the call itself is nn.Module.to.
    return model.to(device).eval(), load_tokenizer(tok_dir)  # type: ignore[arg-type]

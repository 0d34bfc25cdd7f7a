"""A preference sweep searches only objectives whose trials read the same tokenized rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge.tune import load_sweep
from tuneforge.tune.row_layout import check_row_layouts

JOB = "data:\n  train_files: [pairs.jsonl]\nmethod:\n  name: lora\n  objective: dpo\n"


def _space(tmp_path: Path, space: str):
    path = tmp_path / "sweep.yaml"
    path.write_text(JOB + "search:\n  num_samples: 2\n  space:\n" + space, encoding="utf-8")
    job, sweep = load_sweep(path, [])
    return job, sweep.search_space(job)


def test_paired_objectives_and_beta_with_an_adapter_share_rows(tmp_path: Path) -> None:
    job, space = _space(
        tmp_path,
        "    method:\n"
        "      - name: lora\n"
        "        objective: {choice: [dpo, ipo, simpo, orpo]}\n"
        "        beta: {loguniform: [0.05, 0.5]}\n"
        "      - {name: ia3, objective: dpo}\n",
    )
    check_row_layouts(job, space)  # no error: one layout


@pytest.mark.parametrize(
    "branch",
    [
        "{name: lora, objective: {choice: [dpo, kto]}}",  # pairs vs labelled replies
        "{name: lora, objective: {choice: [dpo, sft]}}",  # pairs vs chat rows
        "{name: lora, reference: {choice: [adapter_disabled, precomputed]}}",  # extra log-prob columns
    ],
)
def test_spaces_needing_other_rows_are_refused(tmp_path: Path, branch: str) -> None:
    job, space = _space(tmp_path, f"    method:\n      - {branch}\n")
    with pytest.raises(ValueError, match="differently tokenized data"):
        check_row_layouts(job, space)


def test_full_and_lora_dpo_differ_in_their_reference(tmp_path: Path) -> None:
    job, space = _space(tmp_path, "    method:\n      - {name: lora}\n      - {name: full}\n")
    with pytest.raises(ValueError, match="full \\+ dpo -> pairs rows, precomputed reference"):
        check_row_layouts(job, space)

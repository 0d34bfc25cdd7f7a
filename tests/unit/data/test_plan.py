"""A run reads each input file once on the driver: its data plan, which every later consumer reuses.

The driver path of a real small run (no Ray cluster: the stages are called directly) is followed
with every ``open`` of an input file counted by an audit hook: ``stages.prepare`` (the plan, the
tiny model's tokenizer sample, the held-out split, the base model), the cache key, the held-out
file for the promotion gate and the registered version's lineage tags. Before the plan's single
pass carried those consumers, the same path opened each file four times (plan, tokenizer sample,
held-out split, lineage's own truncated hash), plus twice more in the Ray tasks of a cache miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
_WATCHED: dict[str, Counter] = {}  # realpath -> opens, while a test watches


def _hook(event: str, args: tuple) -> None:
    if event != "open" or not _WATCHED or not args or not isinstance(args[0], str | bytes | os.PathLike):
        return
    path = os.path.realpath(os.fsdecode(args[0]))
    if path in _WATCHED["files"]:
        _WATCHED["files"][path] += 1


sys.addaudithook(_hook)  # audit hooks cannot be removed: this one only counts while _WATCHED is set


def _tool_records(n: int) -> list[dict]:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    return [
        {
            "messages": [
                {"role": "user", "content": f"look up item {i}"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": f"c{i}",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": json.dumps({"item": i})},
                        }
                    ],
                },  # fmt: skip
                {"role": "tool", "name": "lookup", "content": f"item {i} is blue"},
                {"role": "assistant", "content": f"Item {i} is blue."},
            ],
            "tools": tools,
        }
        for i in range(n)
    ]


def test_each_input_file_is_read_once_per_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tuneforge.config import config_from_dict, config_hash, load_config
    from tuneforge.data.plan import TextSample
    from tuneforge.data.record_rows import SplitRules, file_items, file_rows
    from tuneforge.distributed import stages
    from tuneforge.distributed.data_pipeline import build_plan, cache_key
    from tuneforge.distributed.holdout import write_holdout
    from tuneforge.registry.lineage import lineage_tags

    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path / "home"))
    data = tmp_path / "data"
    data.mkdir()
    paths = [
        shutil.copy(REPO / "platform/tuneforge/assets/data" / n, data)
        for n in ("tiny_chat.jsonl", "tiny_alpaca.jsonl")
    ]
    tools = data / "tools.jsonl"
    tools.write_text("".join(json.dumps(r) + "\n" for r in _tool_records(200)))
    paths.append(str(tools))
    raw = load_config(REPO / "jobs/configs/finetune/tiny_cpu.yaml").model_dump(mode="json")
    raw["data"].update(train_files=[{"path": p} for p in paths], cache_dir=str(tmp_path / "cache"))
    job = config_from_dict(raw)
    files = {os.path.realpath(p): 0 for p in paths}
    run_dir = tmp_path / "run"

    _WATCHED["files"] = Counter(files)
    try:
        prepared = stages.prepare(job, run_dir, lambda _m: None)  # plan + sample + holdout + base model
        pj = prepared.job
        key = cache_key(pj.data, pj.trainer, prepared.plan, str(prepared.tok_dir))
        holdout = write_holdout(prepared.job, prepared.plan, run_dir / "eval.jsonl")  # the promotion gate's
        tags = lineage_tags(
            "run-id", model=pj.model, method=pj.method, data=pj.data, job_hash=config_hash(pj),
            fmt=prepared.fmt, plan=prepared.plan,
        )  # fmt: skip
        driver = dict(_WATCHED["files"])
        _WATCHED["files"] = Counter(files)
        plan, d = prepared.plan, prepared.job.data
        for target in ("train", "eval"):  # what the Ray Data tasks of a cache miss read (one task a file)
            rules = SplitRules.of(plan, target, eval_fraction=d.eval_fraction, seed=job.trainer.seed,
                                  has_eval_files=False, on_bad=d.on_bad_record)  # fmt: skip
            for item in file_items(plan, "train"):
                file_rows(item, rules)
        tasks = dict(_WATCHED["files"])
    finally:
        _WATCHED.clear()
    print(f"opens per input file: driver {driver}; Ray tasks of a cache miss {tasks}")
    assert driver == dict.fromkeys(files, 1)  # the data plan's pass, nothing else
    assert tasks == dict.fromkeys(files, 2)  # train split and eval split, in the workers (none on a hit)

    # every consumer used the plan's one digest, and what rode on the pass equals a second read
    digests = {os.path.realpath(sp.path): sp.sha256 for sp in plan.sources}
    assert digests == {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in files}
    assert [d["sha256"] for d in json.loads(tags["tuneforge.data"])] == [digests[p] for p in files]
    assert len(key) == 24 and holdout == plan.holdout == run_dir / "eval.jsonl"
    plan.holdout = None
    again = write_holdout(prepared.job, plan, tmp_path / "again" / "eval.jsonl")  # re-streams the files
    assert again.read_bytes() == holdout.read_bytes() and '"tool_calls"' in holdout.read_text()
    sample = TextSample(job.data.template)
    build_plan(prepared.job.data, prepared.job.trainer.seed, [sample])
    assert sample.texts() == plan.sample_texts(job.data.template)

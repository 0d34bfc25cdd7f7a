"""The tokenized-data cache's pure parts, without Ray: key, manifest validation, atomic publish."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tuneforge.data.plan import plan_data
from tuneforge.data.token_cache import (
    MANIFEST,
    PIPELINE_VERSION,
    PlanSettings,
    cache_key,
    clear_unfinished,
    publish,
    read_manifest,
    split_stats,
    staged,
)
from tuneforge.data.tokenize_blocks import COUNTERS, EncodeSettings


@dataclasses.dataclass
class Spec:
    path: str
    format: str = "auto"
    weight: float | None = None
    name: str | None = None


def _chat(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}


def _file(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


@pytest.fixture
def inputs(tmp_path: Path):
    a = _file(tmp_path / "a.jsonl", [_chat(i) for i in range(40)] + [_chat(3)])
    b = _file(tmp_path / "b.jsonl", [_chat(100 + i) for i in range(20)])
    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "tokenizer.json").write_text('{"v": 1}')
    (tok / "tokenizer_config.json").write_text("{}")
    (tok / "README.md").write_text("not a tokenizer file")
    plan = plan_data([Spec(a, weight=1), Spec(b, weight=2)], [], eval_fraction=0.1, seed=3)
    settings = PlanSettings(True, None, 0.1, 3, "error", None)
    encode = EncodeSettings("chatml", 128, True, False, False, "truncate")
    return tmp_path, plan, tok, settings, encode, (a, b)


def test_key_is_stable_and_changes_with_every_input(inputs) -> None:
    tmp_path, plan, tok, settings, encode, (a, b) = inputs
    key = cache_key(plan, tok, settings, encode)
    assert len(key) == 24 and key == cache_key(plan, tok, settings, encode)
    assert (
        cache_key(
            plan_data([Spec(a, weight=1), Spec(b, weight=2)], [], eval_fraction=0.1, seed=3),
            tok,
            settings,
            encode,
        )
        == key
    )  # fmt: skip  (a new plan of the same files: same key)
    keys = {key}

    def differs(k: str) -> None:
        assert k not in keys
        keys.add(k)

    for f in dataclasses.fields(settings):  # every plan setting
        value = getattr(settings, f.name)
        other = {bool: not value, float: 0.5, int: 4, str: "skip"}.get(type(value), 7)
        differs(cache_key(plan, tok, dataclasses.replace(settings, **{f.name: other}), encode))
    for f in dataclasses.fields(encode):  # every encode setting
        value = getattr(encode, f.name)
        other = {bool: not value, int: 64, str: "drop" if f.name == "truncation" else "llama3"}[type(value)]
        differs(cache_key(plan, tok, settings, dataclasses.replace(encode, **{f.name: other})))
    differs(cache_key(plan, tok, settings, encode, version=PIPELINE_VERSION + 1))
    for change in ("sha256", "weight", "factor", "fmt_arg"):  # every per-source field
        sp = plan.sources[1]
        old = getattr(sp, change)
        setattr(sp, change, {"sha256": "0" * 64, "weight": 5.0, "factor": 0.25, "fmt_arg": "openai"}[change])
        differs(cache_key(plan, tok, settings, encode))
        setattr(sp, change, old)
    assert cache_key(plan, tok, settings, encode) == key
    plan.drop.add(("train", 1, 0))  # another drop set
    differs(cache_key(plan, tok, settings, encode))
    plan.drop.discard(("train", 1, 0))
    (tok / "README.md").write_text("edited, but not a tokenizer file")
    assert cache_key(plan, tok, settings, encode) == key
    (tok / "tokenizer.json").write_text('{"v": 2}')  # a retrained tokenizer
    differs(cache_key(plan, tok, settings, encode))
    Path(a).write_text(Path(a).read_text() + json.dumps(_chat(999)) + "\n")  # the data itself
    replanned = plan_data([Spec(a, weight=1), Spec(b, weight=2)], [], eval_fraction=0.1, seed=3)
    differs(cache_key(replanned, tok, settings, encode))


def _write_split(tmp: Path, split: str, rows: int, max_seq_len: int = 8) -> None:
    (tmp / split).mkdir(parents=True, exist_ok=True)
    if not rows:
        return
    cols = {c: np.zeros(rows, dtype=np.int64) for c in COUNTERS}
    cols["n_docs"][0] = rows * 2
    cols["n_real"] = np.full(rows, max_seq_len // 2, dtype=np.int64)
    pq.write_table(pa.table(cols), tmp / split / "part-000000.parquet")


def test_publish_is_atomic_and_the_manifest_is_validated(tmp_path: Path) -> None:
    entry = tmp_path / "cache" / "abc123"
    with staged(entry) as tmp:
        assert tmp.parent == entry.parent and tmp.name.startswith(".abc123.")
        _write_split(tmp, "train", 3)
        _write_split(tmp, "eval", 0)  # an empty split: only its directory
        stats = {**split_stats(tmp / "train", "train", 8), **split_stats(tmp / "eval", "eval", 8)}
        manifest = publish(tmp, entry, stats)
    assert not tmp.exists() and sorted(p.name for p in entry.parent.iterdir()) == ["abc123"]
    assert stats == {"train_blocks": 3, "train_records": 6, "train_dropped": 0, "train_truncated": 0,
                     "train_too_long_dropped": 0, "train_chunked": 0, "train_tokens": 12,
                     "train_padding_share": 0.5, "eval_blocks": 0}  # fmt: skip
    assert manifest == read_manifest(entry)
    assert manifest["key"] == "abc123" and manifest["version"] == PIPELINE_VERSION
    assert manifest["files"] == {"train": ["part-000000.parquet"], "eval": []}

    # a second writer of the same key loses the race: the published entry stays, its temp dir goes
    with staged(entry) as tmp2:
        _write_split(tmp2, "train", 1)
        assert publish(tmp2, entry, {"train_blocks": 1})["stats"] == stats
    assert not tmp2.exists() and read_manifest(entry) == manifest

    def broken(change) -> bool:
        m = {**manifest}
        change(m)
        (entry / MANIFEST).write_text(json.dumps(m) if isinstance(m, dict) else m)
        bad = read_manifest(entry) is None
        (entry / MANIFEST).write_text(json.dumps(manifest))
        return bad

    assert broken(lambda m: m.update(key="other"))  # another entry's manifest
    assert broken(lambda m: m.update(version=PIPELINE_VERSION - 1))  # an older pipeline's rows
    assert broken(lambda m: m.update(stats=None))
    assert broken(lambda m: m["files"].update(train=["part-000000.parquet", "part-000001.parquet"]))
    (entry / MANIFEST).write_text('{"key": "abc1')  # torn write
    assert read_manifest(entry) is None
    (entry / MANIFEST).write_text(json.dumps(manifest))
    (entry / "train" / "part-000000.parquet").rename(entry / "train" / "moved.parquet")
    assert read_manifest(entry) is None  # the listed files are not the ones there
    clear_unfinished(entry)
    assert not entry.exists()


def test_a_failed_write_leaves_no_partial_directory(tmp_path: Path) -> None:
    entry = tmp_path / "cache" / "k"
    with pytest.raises(RuntimeError, match="tokenizer died"), staged(entry) as tmp:
        _write_split(tmp, "train", 2)
        raise RuntimeError("tokenizer died")
    assert list(entry.parent.iterdir()) == []  # neither the entry nor its temp dir
    entry.mkdir()  # an entry without a manifest (a writer killed before the rename cannot leave one,
    (entry / "train").mkdir()  # but an older layout or a hand copy can)
    assert read_manifest(entry) is None
    clear_unfinished(entry)
    assert not entry.exists()


def test_pure_data_modules_import_without_ray() -> None:
    mods = ["tuneforge.data.token_cache", "tuneforge.data.tokenize_blocks", "tuneforge.data.record_rows",
            "tuneforge.data.holdout", "tuneforge.data.openai_format", "tuneforge.data.plan"]  # fmt: skip
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        "bad = ('ray.', 'tuneforge.distributed')\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith(bad)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout

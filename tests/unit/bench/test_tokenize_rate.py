"""The single-process tokenization yardstick counts every token of the same texts."""

from __future__ import annotations

from pathlib import Path

from tuneforge.bench.tokenize_rate import count_tokens, single_process_rate
from tuneforge.testing import toy_tokenizer


def test_single_process_rate_counts_the_texts_tokens(tmp_path: Path) -> None:
    tok = toy_tokenizer(tmp_path / "tok")
    texts = ["hello world", "the quick brown fox"] * 20
    out = single_process_rate(texts, str(tmp_path / "tok"), repeats=1)
    assert out["tokens"] == count_tokens(texts, tok) > len(texts)
    assert out["records"] == 40 and out["records_per_s"] > 0 and out["tokens_per_s"] > out["records_per_s"]

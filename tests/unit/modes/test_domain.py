"""domain: raw text, trained whole (pretraining), built from text files."""

from __future__ import annotations

from pathlib import Path

from tuneforge.modes import get_mode
from tuneforge.modes.domain import DomainExample

from .helpers import build, write


def test_domain_is_raw_text() -> None:
    conv = get_mode("domain").compile(DomainExample("Raw domain text."))
    assert conv.mode == "pretrain" and conv.text == "Raw domain text." and conv.messages[0].trained


def test_domain_from_text(tmp_path: Path) -> None:
    src = write(tmp_path / "d.txt", "A long enough line of domain text.\nshort\n")
    items, opts = build("domain", [src])
    assert [x.text for x in items] == ["A long enough line of domain text."] and opts.counts[
        "skipped_short"
    ] == 1

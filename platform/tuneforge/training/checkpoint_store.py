"""Which checkpoints on storage are complete, which one a run resumes from, and which to keep.

A checkpoint directory is written by several ranks (each reports its own folder; Ray Train merges
them into one directory on storage) and the copy is not atomic: a run killed while uploading leaves
a directory that looks like a checkpoint but is missing files, or holds a truncated one. And Ray
registers reported checkpoints asynchronously, so one that *is* complete on storage may be unknown
to Ray's own bookkeeping after a crash. Both are handled here, without Ray, from what is on disk:

* every rank writes ``tuneforge/complete.rank<r>.json`` last, listing each file it wrote with its
  size and sha256 (its completion marker);
* a checkpoint is *complete* when ``trainer_state.json`` names its world size and every rank's
  marker is present and matches the files;
* resume takes the complete checkpoint with the highest step; incomplete ones are orphans and are
  removed; retention keeps the last K and the best K by eval loss.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tuneforge.data.files import fsync_path, fsync_tree, sha256_file
from tuneforge.training.trainer_state import STATE_FILE, TrainerState


def marker_name(rank: int) -> str:
    """The completion marker of ``rank`` inside a checkpoint directory."""
    return f"tuneforge/complete.rank{rank}.json"


def write_marker(local_dir: Path, rank: int) -> Path:
    """List every file in ``local_dir`` (this rank's share of a checkpoint) in its marker, last.

    The marker is written to a temporary name, flushed and renamed, so a marker that exists is whole.
    Everything is fsynced first, the marker before its rename and the directory after it: a marker
    that survives a power loss then vouches for files that survived it too.
    """
    files = {
        str(p.relative_to(local_dir)): {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(local_dir.rglob("*"))
        if p.is_file() and not p.name.startswith("complete.rank")
    }
    target = local_dir / marker_name(rank)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    fsync_tree(local_dir)  # the files the marker lists, and the directories naming them
    with tmp.open("w") as fh:
        json.dump({"rank": rank, "files": files}, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(target)
    fsync_path(target.parent)  # the rename itself
    return target


def incomplete_reason(ckpt_dir: Path, verify_hashes: bool = True) -> str | None:
    """Why ``ckpt_dir`` is not a complete checkpoint, or None when it is."""
    if not (ckpt_dir / STATE_FILE).is_file():
        return "no trainer_state.json"
    try:
        state = TrainerState.load(ckpt_dir)
    except (ValueError, TypeError) as exc:
        return f"unreadable trainer_state.json ({exc})"
    for rank in range(state.world_size):
        marker = ckpt_dir / marker_name(rank)
        if not marker.is_file():
            return f"rank {rank} never finished writing (no {marker.name})"
        try:
            files = json.loads(marker.read_text())["files"]
        except (ValueError, KeyError) as exc:
            return f"unreadable {marker.name} ({exc})"
        for rel, meta in files.items():
            f = ckpt_dir / rel
            if not f.is_file() or f.stat().st_size != meta["size"]:
                return f"{rel} is missing or truncated"
            if verify_hashes and sha256_file(f) != meta["sha256"]:
                return f"{rel} does not match its recorded sha256"
    return None


@dataclass(frozen=True)
class StoredCheckpoint:
    """A complete checkpoint on storage and the state it records."""

    path: Path
    state: TrainerState


def _candidates(storage_dir: Path) -> list[Path]:
    if not storage_dir.is_dir():
        return []
    return sorted(p for p in storage_dir.iterdir() if p.is_dir() and p.name.startswith("checkpoint_"))


def scan(storage_dir: Path, verify_hashes: bool = False) -> tuple[list[StoredCheckpoint], list[Path]]:
    """(complete checkpoints sorted by step, incomplete directories) under ``storage_dir``."""
    complete, orphans = [], []
    for d in _candidates(storage_dir):
        if incomplete_reason(d, verify_hashes) is None:
            complete.append(StoredCheckpoint(d, TrainerState.load(d)))
        else:
            orphans.append(d)
    complete.sort(key=lambda c: c.state.step)
    return complete, orphans


def latest_resumable(storage_dir: Path) -> StoredCheckpoint | None:
    """The newest complete checkpoint that holds optimizer state (hashes verified), else None."""
    complete, _ = scan(storage_dir)
    for ckpt in reversed(complete):
        if ckpt.state.resumable and incomplete_reason(ckpt.path, verify_hashes=True) is None:
            return ckpt
    return None


def remove_orphans(storage_dir: Path) -> list[Path]:
    """Delete incomplete checkpoint directories (a crash mid-upload); returns what was removed."""
    _, orphans = scan(storage_dir)
    for d in orphans:
        shutil.rmtree(d, ignore_errors=True)
    return orphans


def prune(storage_dir: Path, keep_last: int, keep_best: int) -> list[Path]:
    """Keep the ``keep_last`` newest and the ``keep_best`` lowest-eval-loss complete checkpoints.

    Incomplete directories are left alone here (another rank may still be uploading); resume
    removes them. Returns the directories deleted.
    """
    complete, _ = scan(storage_dir)
    keep = {c.path for c in complete[-keep_last:]} if keep_last else set()
    scored = [c for c in complete if not math.isnan(c.state.eval_loss)]
    keep |= {c.path for c in sorted(scored, key=lambda c: c.state.eval_loss)[:keep_best]}
    dropped = [c.path for c in complete if c.path not in keep]
    for d in dropped:
        shutil.rmtree(d, ignore_errors=True)
    return dropped


def fingerprint(tensor_bytes: bytes) -> str:
    """A short stable id of a batch's token ids (the batch ledger's record id)."""
    return hashlib.sha1(tensor_bytes).hexdigest()[:16]

"""The dataset catalog: LLaMA-Factory ``dataset_info.json``, a dataset name -> its file and record layout.

A catalog entry is named either with ``{path: .../dataset_info.json, name: identity}`` in a job
config or as ``.../dataset_info.json#identity`` (the same thing, handy on the command line). The
entry's ``file_name`` is resolved next to the catalog; ``formatting`` (alpaca | sharegpt),
``columns`` and ``tags`` become a ``FormatSpec``. An alpaca entry whose columns map only ``prompt``
(LLaMA-Factory's pretraining corpora such as ``c4_demo``) reads as raw text. Hub-only entries and
preference/multimodal entries are rejected with a message that says why.
"""

from __future__ import annotations

import json
import os
import posixpath
from pathlib import Path

from tuneforge.data.errors import DataError
from tuneforge.data.files import is_url, read_bytes
from tuneforge.data.formats.common import FormatSpec

CATALOG_FILE = "dataset_info.json"
_UNSUPPORTED_COLUMNS = ("chosen", "rejected", "kto_tag", "images", "videos", "audios")
_ALPACA_COLUMNS = {
    "prompt": "instruction",
    "query": "input",
    "response": "output",
    "system": "system",
    "history": "history",
}
_SHAREGPT_COLUMNS = ("messages", "system", "tools")


def split_ref(path: str, name: str | None = None) -> tuple[str, str | None]:
    """``a/dataset_info.json#identity`` -> (``a/dataset_info.json``, ``identity``); ``name`` wins."""
    if "#" in path and posixpath.basename(path.split("#", 1)[0]) == CATALOG_FILE:
        path, ref = path.split("#", 1)
        name = name or ref
    return path, name


def is_catalog(path: str) -> bool:
    return posixpath.basename(path.replace("\\", "/")) == CATALOG_FILE


def load_catalog(path: str) -> dict[str, object]:
    try:
        info = json.loads(read_bytes(path).decode("utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"not a valid dataset_info.json ({exc})", path, kind="file") from None
    if not isinstance(info, dict):
        raise DataError("a dataset catalog must be a JSON object of name -> entry", path, kind="file")
    return info


def entry_path(catalog: str, file_name: str, field: str) -> str:
    """``file_name`` resolved next to ``catalog``; refused if it leaves the catalog's folder.

    A catalog describes the datasets of its own folder, so ``../../etc/passwd`` or an absolute
    path is an error naming the catalog file and the entry's field. The check is lexical (after
    normalising ``..``), so a symlink inside the folder stays usable.
    """
    if is_url(catalog):
        base = posixpath.dirname(catalog)
        scheme, sep, rest = base.partition("://")
        root = posixpath.normpath(rest) if rest else rest
        target = posixpath.normpath(posixpath.join(rest, file_name))
        inside = not posixpath.isabs(file_name) and target.startswith(root.rstrip("/") + "/")
        data_path = f"{scheme}{sep}{target}"
    else:
        root = os.path.normpath(os.path.abspath(Path(catalog).parent))
        target = os.path.normpath(os.path.join(root, file_name))
        inside = not os.path.isabs(file_name) and target.startswith(root.rstrip(os.sep) + os.sep)
        data_path = str(Path(Path(catalog).parent) / file_name)
    if not inside:
        raise DataError(
            f"{file_name!r} points outside the catalog's folder {root}; a catalog may only name "
            "files inside its own folder",
            catalog,
            field=field,
            kind="file",
        )
    return data_path


def resolve(path: str, name: str | None) -> tuple[str, FormatSpec]:
    """The data file and the record layout of catalog entry ``name``."""
    if not name:
        raise DataError(
            f"{CATALOG_FILE} is a dataset catalog; name an entry with `name:` or as PATH#NAME",
            path,
            kind="file",
        )
    info = load_catalog(path)
    if name not in info:
        known = ", ".join(sorted(k for k, v in info.items() if isinstance(v, dict) and "file_name" in v))
        raise DataError(f"no dataset {name!r} in the catalog; local entries: {known}", path, kind="file")
    entry = info[name]
    field = f"{name}"
    if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str):
        raise DataError(
            "entry has no local file_name (tuneforge never downloads hub datasets)",
            path,
            field=field,
            kind="file",
        )
    columns = entry.get("columns") or {}
    tags = entry.get("tags") or {}
    if entry.get("ranking") or any(c in columns for c in _UNSUPPORTED_COLUMNS):
        raise DataError(
            "preference and multimodal datasets are not supported for supervised fine-tuning",
            path,
            field=field,
            kind="file",
        )
    data_path = entry_path(path, entry["file_name"], field=f"{name}.file_name")
    formatting = entry.get("formatting", "alpaca")
    if formatting == "sharegpt":
        spec = FormatSpec("sharegpt", {k: columns[k] for k in _SHAREGPT_COLUMNS if k in columns}, dict(tags))
    elif formatting == "alpaca":
        if "prompt" in columns and "response" not in columns:
            spec = FormatSpec("text", {"text": columns["prompt"]})
        else:
            spec = FormatSpec(
                "alpaca",
                {ours: columns[theirs] for theirs, ours in _ALPACA_COLUMNS.items() if theirs in columns},
            )
    else:
        raise DataError(
            f"unknown formatting {formatting!r}; expected alpaca or sharegpt",
            path,
            field=f"{name}.formatting",
            kind="file",
        )
    return data_path, spec

"""Preference files -> ``PreferenceRecord`` lists, with the SFT readers' file types and bad-record policy.

The same machinery as ``data/readers.py``: ``data/files.py`` turns .jsonl, .json (one array) and
.parquet files into raw records with their line (or row) numbers; the first readable record fixes the
file's format (``detect_preference_format``) unless one is given; ``on_bad="error"`` raises the
first ``DataError`` and ``on_bad="skip"`` counts it in a ``ProblemLog``. A catalog entry,
``dataset_info.json#dpo_en_demo``, is read through its ``columns`` and ``tags``.

``is_preference_file`` lets the CLI (and the run's planner) route a file to these readers or to the
SFT ones without being told which it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tuneforge.data.catalog import entry_path, is_catalog, load_catalog, split_ref
from tuneforge.data.errors import DataError
from tuneforge.data.files import iter_items, read_bytes, sha256_hex, suffix_of
from tuneforge.data.formats.common import FormatSpec
from tuneforge.data.preference.formats import (
    PREFERENCE_FORMATS,
    detect_preference_format,
    to_preference,
    unknown_format,
)
from tuneforge.data.preference.ir import PAIRED, UNPAIRED, PreferenceRecord
from tuneforge.data.readers import BAD_RECORD_POLICIES, ProblemLog


@dataclass
class ParsedPreferenceFile:
    """One preference input after parsing: its format, hash, good records and skipped problems."""

    source: str
    path: str
    format: str
    sha256: str
    records: list[PreferenceRecord]
    problems: ProblemLog
    records_seen: int = 0
    #: what the file was parsed with ("auto", a format name or a catalog spec); re-parsing the same
    #: bytes with it gives the same records (a Ray task must)
    fmt_arg: str | FormatSpec = "auto"

    @property
    def counts(self) -> dict[str, int]:
        """Good records per kind: ``{"paired": n, "unpaired": m}``."""
        out = dict.fromkeys((PAIRED, UNPAIRED), 0)
        for rec in self.records:
            out[rec.kind] += 1
        return out


def iter_preference(
    data: bytes, source: str, fmt: str | FormatSpec = "auto", problems: ProblemLog | None = None,
    on_bad: str = "error",
) -> Iterator[tuple[str, PreferenceRecord]]:  # fmt: skip
    """Every good record of one file's bytes with the file's format name, problems into ``problems``."""
    if on_bad not in BAD_RECORD_POLICIES:
        raise ValueError(
            f"unknown on_bad_record {on_bad!r}; expected one of {', '.join(BAD_RECORD_POLICIES)}"
        )
    explicit = isinstance(fmt, str) and fmt != "auto"
    spec = fmt if isinstance(fmt, FormatSpec) else (FormatSpec(fmt) if explicit else None)
    if spec is not None and spec.name not in PREFERENCE_FORMATS:
        raise ValueError(
            f"unknown preference format {spec.name!r}; expected auto, {', '.join(PREFERENCE_FORMATS)}"
        )
    problems = problems if problems is not None else ProblemLog()
    in_array, seen = suffix_of(source) == ".json", 0
    for line, item in iter_items(data, source):
        seen += 1
        try:
            if isinstance(item, DataError):
                raise item
            fixed = explicit or (spec is not None and bool(spec.columns))
            found = None if fixed else detect_preference_format(item)
            if spec is None:
                if found is None:
                    raise unknown_format(item, source, line)
                spec = FormatSpec(found)
            elif found is not None and found != spec.name:
                raise DataError(
                    f"record is in {found!r} format but the file's first record is {spec.name!r}; "
                    "one file must hold one format",
                    source,
                    line,
                    kind="format_mismatch",
                )
            record = to_preference(item, spec, source, line, explicit=explicit)
        except DataError as err:
            if in_array and not err.record:
                err.record = seen
            if on_bad == "error":
                raise
            problems.add(err)
            continue
        yield spec.name, record
    if seen == 0:
        raise DataError("file is empty: no records", source, kind="empty_file")


def parse_preference_bytes(
    data: bytes, source: str, fmt: str | FormatSpec = "auto", *, on_bad: str = "error", max_errors: int = 50,
    display: str | None = None,
) -> ParsedPreferenceFile:  # fmt: skip
    """Parse one file's bytes; ``source`` is its path (the extension picks the file type).

    A file whose every record was skipped comes back with no records and its problems listed (for
    ``tuneforge data validate``); a run must refuse it, as it refuses such an SFT file.
    """
    problems = ProblemLog(max_errors=max_errors)
    records: list[PreferenceRecord] = []
    name = fmt.name if isinstance(fmt, FormatSpec) else fmt
    for found, record in iter_preference(data, source, fmt, problems, on_bad):
        name = found
        records.append(record)
    seen = len(records) + problems.total
    return ParsedPreferenceFile(
        display or source, source, "unknown" if name == "auto" else name, sha256_hex(data), records,
        problems, seen, fmt,
    )  # fmt: skip


def read_preference_file(
    path: str | Path, on_bad: str = "error", fmt: str = "auto", *, max_errors: int = 50
) -> ParsedPreferenceFile:
    """Read one preference input: a file, an fsspec URL, or a catalog entry ``dataset_info.json#NAME``."""
    ref = str(path)
    catalog, name = split_ref(ref)
    data_path, spec = catalog_entry(catalog, name) if is_catalog(catalog) else (ref, fmt)
    return parse_preference_bytes(
        read_bytes(data_path), data_path, spec, on_bad=on_bad, max_errors=max_errors, display=ref
    )


def catalog_entry(catalog: str, name: str | None) -> tuple[str, FormatSpec]:
    """The data file and preference layout of a LLaMA-Factory catalog entry (``ranking`` or ``kto_tag``)."""
    if not name:
        raise DataError("a dataset catalog; name an entry as PATH#NAME", catalog, kind="file")
    info = load_catalog(catalog)
    if name not in info:
        raise DataError(f"no dataset {name!r} in the catalog", catalog, kind="file")
    entry = info[name]
    if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str):
        raise DataError(
            "entry has no local file_name (tuneforge never downloads hub datasets)",
            catalog,
            field=name,
            kind="file",
        )
    columns, tags = dict(entry.get("columns") or {}), dict(entry.get("tags") or {})
    formatting = entry.get("formatting", "alpaca")
    if "kto_tag" in columns and formatting == "sharegpt":
        keys: tuple[str, ...] = ("messages", "kto_tag", "system", "tools")
        spec = FormatSpec("sharegpt_kto", {k: columns[k] for k in keys if k in columns}, tags)
    elif entry.get("ranking") and formatting == "sharegpt":
        keys = ("messages", "chosen", "rejected", "system", "tools")
        spec = FormatSpec("sharegpt_dpo", {k: columns[k] for k in keys if k in columns}, tags)
    elif entry.get("ranking") and formatting == "alpaca":
        ours = {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected",
                "system": "system", "history": "history"}  # fmt: skip
        spec = FormatSpec("alpaca_dpo", {ours[k]: v for k, v in columns.items() if k in ours})
    else:
        raise DataError(
            "not a preference dataset (no `ranking: true` with sharegpt/alpaca formatting, or no kto_tag "
            "column with sharegpt formatting)",
            catalog,
            field=name,
            kind="file",
        )
    return entry_path(catalog, entry["file_name"], field=f"{name}.file_name"), spec


def is_preference_file(path: str | Path) -> bool:
    """Whether an input holds preference data: its first readable record has a preference format's keys.

    False for anything unreadable (missing file, bad extension, empty): the SFT readers then report
    the problem in their words.
    """
    ref = str(path)
    catalog, name = split_ref(ref)
    try:
        if is_catalog(catalog):
            catalog_entry(catalog, name)
            return True
        if suffix_of(ref) == ".txt":
            return False
        for _, item in iter_items(read_bytes(ref), ref):
            if not isinstance(item, DataError):
                return detect_preference_format(item) is not None
    except (DataError, OSError):
        return False
    return False

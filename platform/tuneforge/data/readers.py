"""Readers: files in any supported format -> ``Conversation`` records, with a bad-record policy.

Every problem with the input is a ``DataError`` naming the file, the 1-based line and the field, so
a user can fix the data without reading code. ``on_bad="error"`` raises the first one;
``on_bad="skip"`` drops the record and counts it in a ``ProblemLog`` (per kind, first examples, and
the first ``max_errors`` errors in full for ``tuneforge data validate``). File-level problems (empty
file, truncated JSON array, unknown extension) always raise: there is nothing left to skip to.

Formats are detected per file (the first readable record fixes it; every later record must match)
unless given explicitly. The functions are pure (no Ray): the Ray Data tasks stream each file's bytes
through ``RecordStream`` (``data/record_rows.py``) and ship flat record rows, not serialized IR.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.data.catalog import is_catalog, resolve, split_ref
from tuneforge.data.errors import DataError
from tuneforge.data.files import iter_items, read_bytes, sha256_hex, suffix_of
from tuneforge.data.formats import SUPPORTED_FORMATS, FormatSpec, detect_format, record_to_ir
from tuneforge.data.ir import Conversation

BAD_RECORD_POLICIES = ("error", "skip")


@dataclass
class ProblemLog:
    """Skipped records of one file or a whole job: counts per kind and the first examples of each."""

    max_examples: int = 3
    max_errors: int = 50
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    errors: list[DataError] = field(default_factory=list)

    def add(self, err: DataError) -> None:
        self.counts[err.kind] = self.counts.get(err.kind, 0) + 1
        shown = self.examples.setdefault(err.kind, [])
        if len(shown) < self.max_examples:
            shown.append(str(err))
        if len(self.errors) < self.max_errors:
            self.errors.append(err)

    def merge(self, other: ProblemLog) -> None:
        for kind, n in other.counts.items():
            self.counts[kind] = self.counts.get(kind, 0) + n
            shown = self.examples.setdefault(kind, [])
            shown.extend(other.examples.get(kind, [])[: self.max_examples - len(shown)])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        """``{"skipped": N, "by_kind": {kind: {"count", "examples"}}}`` -- logged to MLflow as JSON."""
        return {
            "skipped": self.total,
            "by_kind": {
                k: {"count": n, "examples": self.examples.get(k, [])} for k, n in self.counts.items()
            },
        }


@dataclass
class ParsedFile:
    """One input after parsing: where it came from, its format, its hash and its good records."""

    source: str
    path: str
    format: str
    sha256: str
    conversations: list[Conversation]
    problems: ProblemLog
    records_seen: int = 0
    spec: FormatSpec | None = None
    #: what the file was parsed with ("auto", a format name, or a catalog FormatSpec): re-parsing the
    #: bytes with the same argument reproduces exactly the same records (the Ray tasks rely on it).
    fmt_arg: str | FormatSpec = "auto"


def _check_fmt(fmt: str) -> None:
    if fmt != "auto" and fmt not in SUPPORTED_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected auto, {', '.join(SUPPORTED_FORMATS)}")


def _check_policy(on_bad: str) -> None:
    if on_bad not in BAD_RECORD_POLICIES:
        raise ValueError(
            f"unknown on_bad_record {on_bad!r}; expected one of {', '.join(BAD_RECORD_POLICIES)}"
        )


class RecordStream:
    """Iterate one file's good records without holding them all; format and problems fill in as it goes.

    The driver's plan scans files with this (keeping only content hashes), and a Ray task's re-parse is
    ``list(stream)``: one code path decides what a record is, so a re-parse in a Ray task keeps
    exactly the records the driver counted.
    """

    def __init__(
        self,
        data: bytes,
        source: str,
        fmt: str | FormatSpec = "auto",
        *,
        on_bad: str = "error",
        max_errors: int = 50,
    ) -> None:
        _check_policy(on_bad)
        self.data, self.source, self.fmt, self.on_bad = data, source, fmt, on_bad
        self.explicit = not isinstance(fmt, FormatSpec) and fmt != "auto"
        if not isinstance(fmt, FormatSpec):
            _check_fmt(fmt)
        self.spec: FormatSpec | None = (
            fmt if isinstance(fmt, FormatSpec) else (FormatSpec(fmt) if self.explicit else None)
        )
        self.problems = ProblemLog(max_errors=max_errors)
        self.seen = 0

    @property
    def format(self) -> str:
        return self.spec.name if self.spec is not None else "unknown"

    def __iter__(self) -> Iterator[Conversation]:
        source = self.source
        in_array = suffix_of(source) == ".json"  # every record of a one-line array is on line 1
        for line, item in iter_items(self.data, source):
            self.seen += 1
            try:
                if isinstance(item, DataError):
                    raise item
                if self.spec is None:
                    self.spec = FormatSpec(detect_format(item, source=source, line=line))
                elif (
                    not self.explicit
                    and not self.spec.columns
                    and (found := detect_format(item, source=source, line=line)) != self.spec.name
                ):
                    raise DataError(
                        f"record is in {found!r} format but the file's first record is {self.spec.name!r}; "
                        "one file must hold one format",
                        source,
                        line,
                        kind="format_mismatch",
                    )
                conv = record_to_ir(item, self.spec, source, line, explicit=self.explicit)
            except DataError as err:
                if in_array and not err.record:
                    err.record = self.seen
                if self.on_bad == "error":
                    raise
                self.problems.add(err)
                continue
            yield conv
        if self.seen == 0:
            raise DataError("file is empty: no records", source, kind="empty_file")


def _parsed(stream: RecordStream, source: str, fmt_arg: str | FormatSpec) -> ParsedFile:
    """Drain a stream into a ``ParsedFile`` (``source`` is the name shown to users)."""
    convs = list(stream)
    return ParsedFile(
        source, stream.source, stream.format, sha256_hex(stream.data), convs, stream.problems,
        stream.seen, stream.spec, fmt_arg,
    )  # fmt: skip


def open_source(
    path: str | Path,
    fmt: str = "auto",
    name: str | None = None,
    *,
    on_bad: str = "error",
    max_errors: int = 50,
) -> tuple[RecordStream, str, str | FormatSpec]:
    """A config input (file, URL or catalog entry) as a ``RecordStream``, its display name and format arg.

    The format argument is what a Ray task must re-parse the file with to get the same records.
    """
    ref = str(path)
    path_str, name = split_ref(ref, name)
    spec: str | FormatSpec = fmt
    data_path = path_str
    if is_catalog(path_str):
        data_path, spec = resolve(path_str, name)
    stream = RecordStream(read_bytes(data_path), data_path, spec, on_bad=on_bad, max_errors=max_errors)
    return stream, (f"{path_str}#{name}" if is_catalog(path_str) else ref), spec


def read_source(
    path: str | Path,
    fmt: str = "auto",
    name: str | None = None,
    *,
    on_bad: str = "error",
    max_errors: int = 50,
) -> ParsedFile:
    """Read one input as named in a config: a file, a URL, or a catalog entry (``name`` / ``#name``)."""
    stream, source, spec = open_source(path, fmt, name, on_bad=on_bad, max_errors=max_errors)
    return _parsed(stream, source, spec)


def read_conversations(
    path: str | Path, fmt: str = "auto", name: str | None = None
) -> Iterator[Conversation]:
    """A file's records as ``Conversation`` objects (``fmt``: auto or a format name); errors raise."""
    _check_fmt(fmt)
    return _lazy(path, fmt, name)


def _lazy(path: str | Path, fmt: str, name: str | None) -> Iterator[Conversation]:
    yield from read_source(path, fmt, name).conversations

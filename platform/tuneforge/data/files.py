"""Files -> raw records: JSONL, JSON arrays, Parquet and plain text, from local paths or fsspec URLs.

The reader yields ``(line, record)`` pairs, or ``(line, DataError)`` for a record that cannot be
read (a line with bad JSON or bad UTF-8), so the caller decides between stopping and skipping
(``data.on_bad_record``). Problems that leave no record boundary to resume from (a truncated JSON
array, a non-UTF-8 ``.json`` file, an unreadable Parquet file) raise: they are file-level.

``line`` is the 1-based line of the record (JSONL, text, the start of an array element) or the
1-based row (Parquet). A UTF-8 byte-order mark is accepted and dropped. Whole files are read into
memory: Ray Data hands files to tasks as bytes anyway, and training files are split into many.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from tuneforge.data.errors import DataError
from tuneforge.data.formats.common import json_type

SUFFIXES: tuple[str, ...] = (".jsonl", ".json", ".parquet", ".txt")
_JSON_WHITESPACE = re.compile(r"[ \t\n\r]*")
RawItem = tuple[int, "dict[str, Any] | DataError"]


def is_url(path: str) -> bool:
    return "://" in path


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes: ``fsspec`` for URLs (s3://, gs://, memory://, ...), plain open otherwise."""
    path = str(path)
    if is_url(path):
        import fsspec

        with fsspec.open(path, "rb") as handle:
            data: bytes = handle.read()
        return data
    return Path(path).read_bytes()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """sha256 hex of a local file, read in 4 MiB blocks (model files do not fit comfortably in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def fsync_path(path: str | Path) -> None:
    """Flush a file's data, or a directory's entries, from the page cache to disk.

    A directory's fsync is what makes the names in it (a new file, a rename) survive a power loss.
    Filesystems that cannot fsync a directory (some network mounts) raise ``OSError``: skipped.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if os.path.isdir(path):
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not os.path.isdir(path):
            raise
    finally:
        os.close(fd)


def fsync_tree(root: str | Path) -> None:
    """:func:`fsync_path` every file under ``root``, then every directory bottom-up, ``root`` last."""
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                fsync_path(path)
        fsync_path(dirpath)


def suffix_of(source: str) -> str:
    """The lower-case file type; anything but the supported ones is an error naming them."""
    suffix = PurePosixPath(source.split("://", 1)[-1]).suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"unsupported file extension {suffix or '(none)'!r}; expected .jsonl or .json "
            "(or .parquet, .txt)",
            source,
            kind="file",
        )
    return suffix


def iter_items(data: bytes, source: str) -> Iterator[RawItem]:
    """Every record of a file's bytes, with per-record problems yielded as ``DataError`` values."""
    suffix = suffix_of(source)
    if suffix == ".jsonl":
        yield from _jsonl(data, source)
    elif suffix == ".txt":
        yield from _text_lines(data, source)
    elif suffix == ".parquet":
        yield from _parquet(data, source)
    else:
        for record, (line, value) in enumerate(_json_array(_decode_whole(data, source), source), start=1):
            yield line, _object_or_error(value, source, line, record)


def _object_or_error(value: Any, source: str, line: int, record: int = 0) -> dict[str, Any] | DataError:
    if isinstance(value, dict):
        return value
    return DataError(
        f"a record must be a JSON object, got {json_type(value)}", source, line, kind="schema", record=record
    )


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return enumerate(data.splitlines(), start=1)


def _decode_line(raw: bytes, source: str, number: int) -> str | DataError:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return DataError(
            f"not valid UTF-8 ({exc.reason} at byte {exc.start})", source, number, kind="encoding"
        )


def _jsonl(data: bytes, source: str) -> Iterator[RawItem]:
    """JSON Lines: one value per non-blank line, numbered from 1."""
    for number, raw in _lines(data):
        text = _decode_line(raw, source, number)
        if isinstance(text, DataError):
            yield number, text
            continue
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            hint = " (truncated record?)" if _runs_to_the_end(exc, text) else ""
            yield (
                number,
                DataError(
                    f"invalid JSON: {exc.msg} (column {exc.colno}){hint}", source, number, kind="invalid_json"
                ),
            )
            continue
        yield number, _object_or_error(value, source, number)


def _runs_to_the_end(exc: json.JSONDecodeError, text: str) -> bool:
    """The JSON stops mid-value: at the end of the text, or in a string never closed before it."""
    return exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")


def _text_lines(data: bytes, source: str) -> Iterator[RawItem]:
    """Plain text: one record per non-blank line (LLaMA-Factory's convention for ``.txt`` corpora)."""
    for number, raw in _lines(data):
        text = _decode_line(raw, source, number)
        if isinstance(text, DataError):
            yield number, text
        elif text.strip():
            yield number, {"text": text}


def _parquet(data: bytes, source: str) -> Iterator[RawItem]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(f"not a readable Parquet file ({exc})", source, kind="file") from None
    yield from enumerate(table.to_pylist(), start=1)


def _decode_whole(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"not valid UTF-8 ({exc.reason})", source, line, kind="encoding") from None


def _json_array(text: str, source: str) -> Iterator[tuple[int, Any]]:
    """A JSON array, element by element, each with the line its element starts on.

    ``raw_decode`` parses one element at a time, so line numbers cost one newline count over the
    text between elements (linear overall) instead of a second parse.
    """
    decoder = json.JSONDecoder()

    def skip_ws(pos: int) -> int:
        match = _JSON_WHITESPACE.match(text, pos)
        assert match is not None  # the pattern matches the empty string
        return match.end()

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    pos = skip_ws(0)
    if pos == len(text):
        return
    if not text.startswith("[", pos):
        raise DataError(
            "expected a JSON array of records (for one record per line, name the file .jsonl)",
            source,
            line_of(pos),
            kind="file",
        )
    pos = skip_ws(pos + 1)
    line, counted_to = line_of(pos), pos
    record = 0  # 1-based number of the element being read (errors name it: one-line arrays)
    if not text.startswith("]", pos):
        while True:
            record += 1
            line += text.count("\n", counted_to, pos)
            counted_to = pos
            if pos >= len(text):
                raise DataError(
                    "invalid JSON: the array is not closed (truncated file?)",
                    source,
                    line,
                    kind="invalid_json",
                    record=record,
                )
            try:
                value, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                hint = " (truncated file?)" if _runs_to_the_end(exc, text) else ""
                raise DataError(
                    f"invalid JSON: {exc.msg} (column {exc.colno}){hint}",
                    source,
                    exc.lineno,
                    kind="invalid_json",
                    record=record,
                ) from None
            yield line, value
            pos = skip_ws(pos)
            if text.startswith(",", pos):
                pos = skip_ws(pos + 1)
            elif text.startswith("]", pos):
                break
            elif pos >= len(text):
                raise DataError(
                    "invalid JSON: the array is not closed (truncated file?)",
                    source,
                    line_of(pos),
                    kind="invalid_json",
                    record=record,
                )
            else:
                raise DataError(
                    "invalid JSON: expected ',' or ']' after an array element",
                    source,
                    line_of(pos),
                    kind="invalid_json",
                    record=record,
                )
    if skip_ws(pos + 1) != len(text):
        raise DataError(
            "invalid JSON: extra data after the array", source, line_of(skip_ws(pos + 1)), kind="invalid_json"
        )

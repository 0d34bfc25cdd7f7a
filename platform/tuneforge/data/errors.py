"""The one error type the data layer raises for bad input data.

The CLI prints ``str(err)`` and exits 1, so the string must tell a user exactly where to look:
``path/to/file.jsonl:17: messages[2].role: unknown role 'asistant'; expected one of ...``.
"""

from __future__ import annotations


class DataError(ValueError):
    """A record (or a whole file) that cannot be turned into training data.

    Attributes:
        file: the path as the user gave it ("" when unknown, e.g. for a bare record).
        line: 1-based line number of the record (0 when unknown or for a whole-file problem).
        field: a path into the record such as ``messages[2].role`` ("" for the record as a whole).
        message: what is wrong, in words, without the location.
        kind: a short category (``invalid_json``, ``encoding``, ``schema``, ``format_mismatch``,
            ``no_trainable_turn``, ``empty_file``, ...) so that ``on_bad_record: skip`` can count
            skipped records per kind and show the first examples of each.
        record: 1-based position of the record in a JSON array file (0 when not an array element),
            shown as ``(record N)`` after the line: a one-line ``[...]`` file has every record on line 1.
    """

    def __init__(
        self,
        message: str,
        file: str = "",
        line: int = 0,
        field: str = "",
        kind: str = "schema",
        record: int = 0,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        self.kind = kind
        self.record = record
        super().__init__(self._render())

    def _render(self) -> str:
        location = self.file
        if self.line:
            location = f"{location}:{self.line}" if location else f"line {self.line}"
        if self.record:
            location = f"{location} (record {self.record})" if location else f"record {self.record}"
        parts = [p for p in (location, self.field, self.message) if p]
        return ": ".join(parts)

    def __str__(self) -> str:
        return self._render()

    def to_dict(self) -> dict[str, str | int]:
        """The JSON form ``tuneforge data validate --json`` prints and the run logs."""
        d: dict[str, str | int] = {"line": self.line, "field": self.field, "message": self.message}
        d["kind"] = self.kind
        if self.record:
            d["record"] = self.record
        return d

    def __reduce__(self) -> tuple[type[DataError], tuple[str, str, int, str, str, int]]:
        # Keep the structured attributes when the error crosses a process boundary (Ray tasks pickle it).
        return (type(self), (self.message, self.file, self.line, self.field, self.kind, self.record))

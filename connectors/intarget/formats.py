"""Row encoders for the feeds: CSV (RFC 4180, UTF-8, header row) and a JSON array, chunk by chunk.

CSV cells and header names that a spreadsheet would run as a formula are neutralized as OWASP's CSV injection
guidance says: a text value starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, unless
it is a plain phone number or signed number (`+44 20 7946 0958`), which no spreadsheet can run. Amounts, stamps and
flags are never text. JSON needs no such escaping.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import orjson

from connectors.intarget.feeds import FEEDS, Column

Row = Sequence[Any]


@lru_cache(maxsize=4096)
def stamp_text(stamp: int) -> str:
    """Epoch seconds as `YYYY-MM-DD HH:MM:SS` UTC (rows of one window share few stamps, hence the cache)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp))


def _json_value(kind: str) -> Callable[[Any], bytes]:
    if kind in ("num", "int", "flag"):
        return lambda value: b"null" if value is None else str(value).encode()
    if kind == "bool":
        return lambda value: b"null" if value is None else (b"true" if value else b"false")
    if kind == "stamp":
        return lambda value: b"null" if value is None else b'"%s"' % stamp_text(value).encode()
    return orjson.dumps


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet treat a CSV cell as a formula (OWASP: CSV injection)."""
TEXT_CUSTOM_KINDS = frozenset({"string", "array", "datetime"})


PLAIN_NUMBER = re.compile(r"[+-]?[0-9][0-9 ().]*")
"""A phone number (`+44 20 7946 0958`) or a signed number: nothing a spreadsheet could run, so left as it is."""


def neutralized(text: str) -> str:
    """`text`, prefixed with `'` when a spreadsheet would read it as a formula."""
    if text.startswith(FORMULA_STARTS) and PLAIN_NUMBER.fullmatch(text) is None:
        return "'" + text
    return text


def _csv_value(kind: str) -> Callable[[Any], Any]:
    if kind == "stamp":
        return lambda value: "" if value is None else stamp_text(value)
    if kind == "text":
        return lambda value: "" if value is None else neutralized(value) if isinstance(value, str) else value
    return lambda value: "" if value is None else value


def _custom_csv(value: list[str] | None) -> str:
    if not value:
        return ""
    kind, text = value
    return neutralized(text) if kind in TEXT_CUSTOM_KINDS else text


def unique_names(standard: Sequence[str], custom: Sequence[str]) -> list[str]:
    """Column names for the custom fields that never repeat a standard column or each other: a name already taken
    is served as `custom_<name>`, then `custom_<name>_2`, `_3`... (a custom field may itself be named `custom_x`)."""
    taken = set(standard)
    names = []
    for name in custom:
        candidate, suffix = name, 1
        if candidate in taken:
            candidate = f"custom_{name}"
        while candidate in taken:
            suffix += 1
            candidate = f"custom_{name}_{suffix}"
        taken.add(candidate)
        names.append(candidate)
    return names


def _custom_json(kind: str, text: str) -> bytes:
    if kind in ("int", "decimal"):
        return text.encode()
    if kind == "bool":
        return b"true" if text == "1" else b"false"
    return orjson.dumps(text)


class FeedEncoder:
    """Encodes one feed's rows; players' custom fields (the trailing stored column) become extra columns."""

    def __init__(self, feed: str, custom_fields: Sequence[tuple[str, str]] = ()) -> None:
        self.columns: tuple[Column, ...] = FEEDS[feed].columns
        self.custom = [name for name, _ in custom_fields] if feed == "players" else []
        seed = [column.name for column in self.columns]
        # A custom field named like a seed column (e.g. `status`) is served as `custom_<name>`: names stay unique.
        self.header = seed + unique_names(seed, self.custom)
        self._keys = [orjson.dumps(name) + b":" for name in self.header]
        self._json = [_json_value(column.kind) for column in self.columns]
        self._csv = [_csv_value(column.kind) for column in self.columns]
        self._width = len(self.columns)

    def _customs(self, row: Row) -> dict[str, list[str]]:
        raw = row[self._width] if self.custom else None
        return orjson.loads(raw) if raw else {}

    def json_rows(self, rows: Sequence[Row], first: bool) -> bytes:
        """Rows as JSON objects, comma-joined; a leading comma unless they are the array's first rows."""
        parts = []
        keys = self._keys
        for row in rows:
            fields = [keys[i] + encode(row[i]) for i, encode in enumerate(self._json)]
            if self.custom:
                values = self._customs(row)
                for offset, name in enumerate(self.custom):
                    value = values.get(name)
                    encoded = _custom_json(value[0], value[1]) if value else b"null"
                    fields.append(keys[self._width + offset] + encoded)
            parts.append(b"{" + b",".join(fields) + b"}")
        body = b",".join(parts)
        return body if first or not body else b"," + body

    def csv_header(self) -> bytes:
        """The header row (custom field names neutralized like cells)."""
        return self._csv_text([[neutralized(name) for name in self.header]])

    def csv_rows(self, rows: Sequence[Row]) -> bytes:
        """Rows as CSV records."""
        out = []
        for row in rows:
            values = [encode(row[i]) for i, encode in enumerate(self._csv)]
            if self.custom:
                customs = self._customs(row)
                values += [_custom_csv(customs.get(name)) for name in self.custom]
            out.append(values)
        return self._csv_text(out)

    @staticmethod
    def _csv_text(rows: list[list[Any]]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerows(rows)
        return buffer.getvalue().encode("utf-8")

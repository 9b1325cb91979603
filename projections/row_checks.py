"""Checking derived rows against their columns before they are written.

Both engines then refuse the same rows, in Python, with a reason naming the column: SQLite
would store a 40-character status in a String(32) column that PostgreSQL refuses, and a
product of bounded amounts can still exceed a 64-bit column on either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import BigInteger, Integer, String, Table

_BIG = 2**63
_SMALL = 2**31


class RowRejected(ValueError):
    """A derived row does not fit its table; the message names the column, never a value."""


def check_rows(table: Table, rows: Iterable[Mapping[str, Any]]) -> None:
    """Raise RowRejected for the first value that does not fit its column."""
    limits = [(column.name, _limit(column.type)) for column in table.columns]
    for row in rows:
        for name, limit in limits:
            value = row.get(name)
            if value is None or limit is None:
                continue
            kind, bound = limit
            if kind == "int" and isinstance(value, int) and not -bound <= value < bound:
                raise RowRejected(f"{table.name}.{name}: beyond a {bound.bit_length()}-bit integer")
            if kind == "text" and isinstance(value, str) and len(value) > bound:
                raise RowRejected(f"{table.name}.{name}: longer than {bound} characters")


def _limit(column_type: Any) -> tuple[str, int] | None:
    # BigInteger first: it is an Integer too. A with_variant type names its base type.
    if isinstance(column_type, BigInteger):
        return "int", _BIG
    if isinstance(column_type, Integer):
        return "int", _SMALL
    if isinstance(column_type, String) and column_type.length is not None:
        return "text", column_type.length
    return None

"""CSV downloads a spreadsheet opens safely: text cells that a spreadsheet would run as a
formula are escaped, numbers stay numbers, and the file name cannot add header parameters."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection, Iterable, Sequence
from typing import Final
from urllib.parse import quote

from starlette.responses import Response

# What Excel, LibreOffice and Google Sheets read as the start of a formula (OWASP, CSV
# injection): such a text cell is prefixed with a single quote, which they show as text.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
_UNSAFE_IN_FILENAME: Final = re.compile(r"[^A-Za-z0-9._-]")


def text_cell(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA_START) else value


def attachment(filename: str) -> str:
    """A Content-Disposition naming `filename` (RFC 6266): a plain ASCII `filename` for old
    clients and the exact name percent-encoded in `filename*`; neither can end the value."""
    plain = _UNSAFE_IN_FILENAME.sub("_", filename)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


def csv_response(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    filename: str,
    numeric: Collection[str],
) -> Response:
    """`rows` under `header`; the columns named in `numeric` hold numbers (a negative amount
    is a number, not a formula) and are written as they are, every other cell is text."""
    is_text = [column not in numeric for column in header]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow(
            [text_cell(cell) if text else cell for cell, text in zip(row, is_text, strict=True)]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": attachment(filename)},
    )

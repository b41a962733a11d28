"""CSV cells a spreadsheet will not run: formula injection neutralised (OWASP's advice).

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is taken as a formula by
Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)``, ``-2+3+cmd|' /C calc'!A0``): a sensor or
a party can plant one in an id or a narrative, and an analyst opening the export runs it. Such text
gets a leading ``'``, which spreadsheets show as text and never evaluate. Numbers stay numbers:
numeric values are not text, and text that is a plain decimal number (``-12.5``, ``-1e-3``, as the
exports format coordinates) cannot be a formula, so negative numbers are left as they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["FORMULA_STARTS", "read_cell", "safe_cell", "safe_row"]

#: First characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS = frozenset("=+-@\t\r")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """``value`` for a CSV cell: text that a spreadsheet would run as a formula gets a leading ``'``."""
    if value.__class__ is str and value[:1] in FORMULA_STARTS and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def read_cell(value: Any) -> Any:
    """A cell as :func:`safe_cell` wrote it, read back: the leading ``'`` before a formula start is
    dropped, as spreadsheets drop it (``'=x`` shows as ``=x``), so an export re-imports unchanged."""
    if (
        value.__class__ is str
        and value[:1] == "'"
        and value[1:2] in FORMULA_STARTS
        and not _NUMBER.fullmatch(value[1:])
    ):
        return value[1:]
    return value


def safe_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`safe_cell` on every value of a row (for ``csv.DictWriter``)."""
    return {k: safe_cell(v) for k, v in row.items()}

"""CSV that is safe to open in a spreadsheet.

A spreadsheet reads a cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return as a formula (CSV or formula injection, OWASP). Exports carry outside input
(merchants' order ids), so every CSV the service writes goes through ``writer``: a text
cell that begins with one of those characters is written with a leading apostrophe, which
spreadsheets show as text and do not evaluate. Numbers are not text and stay numbers.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, TextIO

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: Any) -> Any:
    """``cell`` as a spreadsheet will read it as text: an apostrophe before a text cell
    that would be taken for a formula; every other value unchanged."""
    if cell.__class__ is str and cell.startswith(FORMULA_PREFIXES):
        return "'" + cell
    return cell


class _SafeWriter:
    def __init__(self, out: TextIO) -> None:
        self._writer = csv.writer(out)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([neutralise(cell) for cell in row])


def writer(out: TextIO) -> _SafeWriter:
    """A ``csv.writer`` on ``out`` whose rows are neutralised cell by cell."""
    return _SafeWriter(out)

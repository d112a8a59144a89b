"""Well names: the one parser and formatter, plate order and the standard plate formats.

A well is named by its row letters and 1-based column, zero-padded to two digits:
``"B03"``; 1536-well plates use two-letter rows after ``Z`` (``"AA01"``..``"AF48"``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: Rows and columns of the standard plate formats.
PLATE_FORMATS: dict[int, tuple[int, int]] = {96: (8, 12), 384: (16, 24), 1536: (32, 48)}

_WELL = re.compile(r"([A-Za-z]{1,2})(\d{1,3})")


def row_letters(index: int) -> str:
    """Row letters of a 0-based row index: 0 -> A, 25 -> Z, 26 -> AA (1536-well plates)."""
    return chr(65 + index) if index < 26 else "A" + chr(65 + index - 26)


def row_index(letters: str) -> int:
    """0-based row index of row letters (the inverse of :func:`row_letters`)."""
    letters = letters.upper()
    return ord(letters[0]) - 65 if len(letters) == 1 else 26 + ord(letters[1]) - 65


def well_name(row: int | str, column: int | str) -> str:
    """Canonical well name: ``well_name(1, 3) == well_name("B", "3") == "B03"``.

    Integer rows are 0-based; columns are 1-based.
    """
    r = row if isinstance(row, str) and row.isalpha() else row_letters(int(row))
    return f"{r.upper()}{int(column):02d}"


def split_well(well: str) -> tuple[str, int]:
    """``"B03" -> ("B", 3)``; raises ValueError on a malformed name."""
    m = _WELL.fullmatch(well.strip())
    if not m:
        raise ValueError(f"not a well name: {well!r} (expected e.g. 'B03')")
    return m.group(1).upper(), int(m.group(2))


def well_sort_key(well: str) -> tuple[int, int]:
    """Plate order (row by row): ``sorted(wells, key=well_sort_key)``."""
    r, c = split_well(well)
    return row_index(r), c


def guess_format(wells: Sequence[str]) -> int | None:
    """Smallest standard format whose grid holds every well, None if none does."""
    if not wells:
        return None
    max_r = max(row_index(split_well(w)[0]) for w in wells) + 1
    max_c = max(split_well(w)[1] for w in wells)
    for fmt, (nr, nc) in sorted(PLATE_FORMATS.items()):
        if max_r <= nr and max_c <= nc:
            return fmt
    return None


def plate_grid(plate_format: int) -> tuple[list[str], list[int]]:
    """Row letters and 1-based columns of a standard plate format."""
    n_rows, n_cols = PLATE_FORMATS[plate_format]
    return [row_letters(i) for i in range(n_rows)], list(range(1, n_cols + 1))

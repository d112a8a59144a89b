"""Plate-map CSVs (``well,condition,phenotype,edge``): read, write, and find one beside a plate."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from napari_pcim.atomic import atomic_file
from napari_pcim.plate_io.model import PlateError
from napari_pcim.plate_io.wells import split_well, well_name

#: The file name of a plate map inside (or beside) a plate.
PLATE_MAP_NAME = "plate_map.csv"
#: The columns of a plate map, in order.
PLATE_MAP_COLUMNS = ("well", "condition", "phenotype", "edge")


def read_plate_map(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """Read a plate-map CSV into ``{well: {"condition", "phenotype", "edge"}}``."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip() for f in reader.fieldnames or []]
            missing = [c for c in ("well", "condition") if c not in fields]
            if missing:
                raise PlateError(
                    f"{path}: plate map lacks column(s) {', '.join(missing)}; "
                    f"found {fields or 'no header'}, expected {','.join(PLATE_MAP_COLUMNS)}"
                )
            out: dict[str, dict[str, str]] = {}
            for i, row in enumerate(reader, start=2):
                row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
                try:
                    well = well_name(*split_well(row["well"]))
                except ValueError as e:
                    raise PlateError(f"{path}, line {i}: {e}") from None
                out[well] = {k: row.get(k, "") for k in PLATE_MAP_COLUMNS[1:]}
            return out
    except OSError as e:
        raise PlateError(f"{path}: cannot read plate map ({e.strerror or e})") from None


def write_plate_map(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> None:
    """Write a plate-map CSV (columns ``well,condition,phenotype,edge``) atomically."""
    with atomic_file(path, overwrite=True) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=PLATE_MAP_COLUMNS)
            w.writeheader()
            for r in rows:
                w.writerow({k: r[k] for k in PLATE_MAP_COLUMNS})


def plate_map_from_rows(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """A plate map from stored rows (e.g. a plate's ``napari_pcim.plate_map`` attribute)."""
    return {r["well"]: {k: str(r.get(k, "")) for k in PLATE_MAP_COLUMNS[1:]} for r in rows}


def find_plate_map(path: Path) -> dict[str, dict[str, str]] | None:
    """The plate map stored with the plate at ``path``, or None.

    Looked for inside the plate folder (``plate_map.csv``), then beside it
    (``<name>_plate_map.csv``, ``plate_map.csv``).
    """
    stem = path.name.split(".")[0]
    folder = path if path.is_dir() else path.parent
    for cand in (
        folder / PLATE_MAP_NAME,
        path.parent / f"{stem}_{PLATE_MAP_NAME}",
        path.parent / PLATE_MAP_NAME,
    ):
        if cand.is_file():
            return read_plate_map(cand)
    return None

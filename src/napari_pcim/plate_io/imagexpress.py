"""Molecular Devices ImageXpress / MetaXpress plate folders (the classic ``.HTD`` layout).

Own parser, because the maintained reader ``bioio-imagexpress`` (0.3) reads only the
newer acquisitions described by a ``.jdce`` file and an ``image_metadata_*.csv``
manifest (those are opened through it, see :mod:`.open`); the classic export that
MetaXpress writes, and that BBBC data sets use, has neither:

    PLATE/PLATE.HTD                          plate file: "WaveName1", "DAPI", ...
    PLATE/TimePoint_1/PLATE_B03_s1_w1<GUID>.TIF
    PLATE/TimePoint_1/ZStep_2/PLATE_B03_s1_w1<GUID>.TIF   (z stacks)

or all files directly in ``PLATE/``. This module only lists the files with their z
and time indices (from the folder names) and finds channel names: the ``.HTD``
``WaveName<n>`` entries, else the ``_IllumSetting_`` of the MetaSeries metadata that
MetaXpress writes into each TIFF. File names are matched in :mod:`.tiff_folder`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_TIMEPOINT = re.compile(r"^TimePoint_(\d+)$", re.IGNORECASE)
_ZSTEP = re.compile(r"^ZStep_(\d+)$", re.IGNORECASE)


def _tiffs(folder: Path) -> list[Path]:
    """The TIFFs in ``folder`` (any case), thumbnails left out; ``os.scandir`` so that a
    plate of 17 000 files is listed without a ``stat`` per file."""
    with os.scandir(folder) as it:
        names = sorted(
            e.name
            for e in it
            if e.name.lower().endswith((".tif", ".tiff"))
            and "_thumb" not in e.name.lower()
            and e.is_file()
        )
    return [folder / n for n in names]


def _numbered(folder: Path, rx: re.Pattern[str]) -> list[tuple[int, Path]]:
    with os.scandir(folder) as it:
        out = [(int(m.group(1)), folder / e.name) for e in it if (m := rx.match(e.name)) and e.is_dir()]
    return sorted(out)


def layout_files(path: Path) -> list[tuple[Path, int, int]]:
    """``(file, z, t)`` for the TIFFs of a plate folder, z and t from ``ZStep_k``/``TimePoint_n``.

    When a time point holds ``ZStep_k`` folders, the files directly in it (MetaXpress's
    own projection) are left out: z comes from the planes. Without such folders every
    file is z 1, t 1 (the file name may still carry them, e.g. Opera ``p02``).
    """
    timepoints = _numbered(path, _TIMEPOINT)
    if not timepoints:
        return [(f, 1, 1) for f in _tiffs(path)]
    out = []
    for t, tp in timepoints:
        zsteps = _numbered(tp, _ZSTEP)
        if zsteps:
            out += [(f, z, t) for z, zs in zsteps for f in _tiffs(zs)]
        else:
            out += [(f, 1, t) for f in _tiffs(tp)]
    return out


def htd_files(path: Path) -> list[Path]:
    """The ``.HTD`` plate files (any case) in ``path``."""
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".htd")


def read_htd(htd: Path) -> dict[str, Any]:
    """The ``"Key", value, ...`` lines of an HTD file: ``{"WaveName1": "DAPI", "XWells": 12}``.

    Values are strings, numbers or booleans (``TRUE``/``FALSE``); lists stay lists.
    """
    out: dict[str, Any] = {}
    for line in htd.read_text(errors="replace").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[0].startswith('"'):
            continue
        vals = [_value(p) for p in parts[1:]]
        out[parts[0].strip('"')] = vals[0] if len(vals) == 1 else vals
    return out


def _value(text: str) -> Any:
    if text.startswith('"'):
        return text.strip('"')
    if text.upper() in ("TRUE", "FALSE"):
        return text.upper() == "TRUE"
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def channel_names(path: Path, rows: Sequence[Any]) -> dict[int | str, str]:
    """``{channel number: name}`` from the plate's HTD file, else the TIFFs' MetaSeries data."""
    # the plate folder, or its parent when a TimePoint_n folder itself was opened
    for htd in htd_files(path) + (htd_files(path.parent) if _TIMEPOINT.match(path.name) else []):
        meta = read_htd(htd)
        names = {
            int(k[len("WaveName"):]): str(v)
            for k, v in meta.items()
            if k.startswith("WaveName") and k[len("WaveName"):].isdigit() and v
        }
        if names:
            return names  # type: ignore[return-value]
    out: dict[int | str, str] = {}
    firsts: dict[int | str, Path] = {}
    for r in rows:
        firsts.setdefault(r.channel, r.path)
    for ch, f in firsts.items():
        name = _metaseries_channel(f)
        if name:
            out[ch] = name
    return out


def _metaseries_channel(f: Path) -> str | None:
    """The ``_IllumSetting_`` (MetaXpress's wavelength name) of a MetaSeries TIFF, or None."""
    import tifffile

    try:
        with tifffile.TiffFile(f) as t:
            if not t.is_metaseries:
                return None
            info = (t.metaseries_metadata or {}).get("PlaneInfo", {})
    except Exception:  # noqa: BLE001 - a file without readable MetaSeries XML has no name
        return None
    name = str(info.get("_IllumSetting_") or "").strip()
    return name or None

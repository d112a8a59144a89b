"""Read folders of per-plane instrument TIFFs (one file per well, site, channel, z, time).

File names are matched against :data:`DEFAULT_PATTERNS` (first pattern that matches
any file wins) or a custom regex with named groups ``well`` (or ``row`` + ``column``),
``channel`` and optionally ``site``, ``z`` and ``t`` (``row`` may be a number from 1 or
letters). A ``channel`` group that is not a
number is itself the channel's name. Extensions match in any case (``.TIF``).
Instrument sites count from 1 (Cellomics from 0); a well's fields are its sites in
ascending order, 0-based. Label images: ``labels/<plate>_B03_s1_<name>.tif``.

Molecular Devices ImageXpress / MetaXpress folders (own parser, :mod:`.imagexpress`:
the maintained ``bioio-imagexpress`` reads only the newer ``.jdce`` acquisitions and
is used for those in :mod:`.open`): ``TimePoint_<n>/`` folders give time points and
``TimePoint_<n>/ZStep_<k>/`` folders z planes; channel names come from the ``.HTD``
plate file or the MetaSeries metadata inside the TIFFs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_pcim.plate_io import imagexpress
from napari_pcim.plate_io.model import Plate, PlateError
from napari_pcim.plate_io.planes import PlaneFile, PlaneSelection, plate_from_planes
from napari_pcim.plate_io.plate_map import find_plate_map
from napari_pcim.plate_io.wells import split_well, well_name

#: napari-pcim's plate attributes, stored beside the TIFFs of a plate it wrote.
META_NAME = "napari_pcim.json"

_GUID = r"(?:_?[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})?"
_TIF = r"\.tiff?$"
#: Default filename patterns, ``(layout name, regex, channel-name prefix)``, tried in
#: order with ``re.search`` (case-insensitive); the first that matches any file wins.
DEFAULT_PATTERNS: tuple[tuple[str, str, str], ...] = (
    # BBBC005 "SIMCEPImages_A05_C18_F1_s01_w1.TIF": C = cell count, F = focus blur (not wells)
    ("BBBC005", r"_(?P<well>[A-P]\d{2})_C\d+_F\d+_s(?P<site>\d+)_w(?P<channel>\d)" + _TIF, "w"),
    # ImageXpress "<plate>_B03_s1_w2.tif" (+ optional GUID), BBBC "..._A01_w1_<GUID>.tif"
    (
        "ImageXpress/MetaXpress",
        r"(?:^|_)(?P<well>[A-Za-z]{1,2}\d{1,3})(?:_s(?P<site>\d+))?(?:_w(?P<channel>\d))?"
        + _GUID + _TIF,
        "w",
    ),
    # Opera / Operetta (Harmony) "r02c03f01p01-ch1sk1fk1fl1.tiff": p = plane, sk = time point
    (
        "Opera/Operetta",
        r"^r(?P<row>\d{2})c(?P<column>\d{2})f(?P<site>\d+)p(?P<z>\d+)-ch(?P<channel>\d+)"
        r"(?:sk(?P<t>\d+))?[^.]*" + _TIF,
        "ch",
    ),
    # Thermo Cellomics "MFGTMP_140206180002_A01f00d0.TIF": f = field (0-based), d = channel
    ("Cellomics", r"_(?P<well>[A-Za-z]{1,2}\d{2})f(?P<site>\d{2,})d(?P<channel>\d)" + _TIF, "d"),
    # CellProfiler's SBS example images "Channel2-01-A-01.tif": channel, image number, row, column
    ("CellProfiler SBS", r"^Channel(?P<channel>\d+)-\d+-(?P<row>[A-Pa-p])-(?P<column>\d{1,2})" + _TIF,
     "Channel"),
)
#: Label files of a TIFF plate: labels/<plate>_B03_s1_<name>.tif
LABEL_PATTERN = (
    r"(?:^|_)(?P<well>[A-Za-z]{1,2}\d{1,3})_s(?P<site>\d+)_(?P<name>[A-Za-z][A-Za-z0-9]*)\.tiff?$"
)
#: What a folder plate may be; named in refusals.
SUPPORTED = (
    "OME-Zarr HCS (NGFF 0.4/0.5), OME-TIFF and bioio files, ImageXpress/MetaXpress (.HTD, "
    "TimePoint_n/ZStep_n; .jdce via bioio-imagexpress), Opera/Operetta (Index.idx.xml, "
    "Index.xml or r01c01f01p01-ch1sk1 names), CellVoyager (MeasurementData.mlf), "
    "BBBC005, Cellomics (_A01f00d0), CellProfiler SBS (Channel1-01-A-01); anything else with "
    "pattern="
)


def _compile(pattern: str | None) -> list[tuple[str, re.Pattern[str], str]]:
    if not pattern:
        return [(n, re.compile(p, re.IGNORECASE), pre) for n, p, pre in DEFAULT_PATTERNS]
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise PlateError(f"invalid filename pattern {pattern!r}: {e}") from None
    groups = set(rx.groupindex)
    if "channel" not in groups or not ("well" in groups or {"row", "column"} <= groups):
        raise PlateError(
            f"filename pattern {pattern!r} needs named groups 'channel' and 'well' "
            "(or 'row' and 'column')"
        )
    return [("pattern", rx, "w")]


def match_files(
    path: Path, files: Sequence[tuple[Path, int, int]], pattern: str | None
) -> tuple[list[PlaneFile], str, str]:
    """Plane rows of ``files`` ((file, z, t) from the folder layout), the layout's name and its
    channel prefix; PlateError naming the patterns tried and a file that did not match."""
    compiled = _compile(pattern)
    wells: dict[tuple[str | None, ...], str] = {}  # a 384-well plate has ~17 000 files, 384 wells
    for layout, rx, prefix in compiled:
        rows = []
        for f, z0, t0 in files:
            m = rx.search(f.name)
            if not m:
                continue
            g = m.groupdict()
            key = (g.get("well"), g.get("row"), g.get("column"))
            if (well := wells.get(key)) is None:
                try:
                    well = wells[key] = (
                        well_name(*split_well(g["well"]))
                        if g.get("well")
                        else well_name(g["row"] if g["row"].isalpha() else int(g["row"]) - 1,
                                       g["column"])
                    )
                except ValueError as e:
                    raise PlateError(f"{f}: {e}") from None
            ch_text = g.get("channel") or "1"
            ch: int | str = int(ch_text) if ch_text.isdigit() else ch_text
            site = int(g["site"]) if g.get("site") else 1
            z = int(g["z"]) if g.get("z") else z0
            t = int(g["t"]) if g.get("t") else t0
            rows.append(PlaneFile(well, site, ch, z, t, f))
        if rows:
            return rows, layout, prefix
    shown = " | ".join(rx.pattern for _, rx, _ in compiled)
    example = files[0][0].name
    raise PlateError(
        f"{path}: no file name matches the pattern {shown!r} (e.g. {example!r}); supported: "
        f"{SUPPORTED} (a regex with named groups well, site, channel, z, t)"
    )


def open_tiff_folder(
    path: Path,
    pattern: str | None,
    pm: dict | None,
    channel_names: Sequence[str] | None,
    selection: PlaneSelection | None = None,
) -> Plate:
    """The TIFF folder at ``path`` as a :class:`Plate` (``pattern``: a custom file-name regex)."""
    selection = selection or PlaneSelection()
    files = imagexpress.layout_files(path)
    if not files:
        raise PlateError(
            f"{path}: folder holds no .tif/.tiff files, no TimePoint_n folders and no "
            f"instrument index file (and is not a zarr plate); supported: {SUPPORTED}"
        )
    rows, layout, prefix = match_files(path, files, pattern)
    names: dict[int | str, str] = {}
    if layout in ("ImageXpress/MetaXpress", "pattern"):
        names = imagexpress.channel_names(path, rows)
    pixel_size = _tiff_pixel_size(rows[0].path)

    label_dir = path / "labels"
    label_files: dict[tuple[str, int], dict[str, Path]] = {}
    if label_dir.is_dir():
        lrx = re.compile(LABEL_PATTERN, re.IGNORECASE)
        for f in sorted(label_dir.iterdir()):
            m = lrx.search(f.name)
            if m:
                key = (well_name(*split_well(m["well"])), int(m["site"]))
                label_files.setdefault(key, {})[m["name"]] = f

    def load_labels(h: tuple) -> dict[str, np.ndarray]:
        """The label files of one field, ``gt`` first."""
        import tifffile

        found = label_files.get((h[0], h[1]), {})
        return {n: tifffile.imread(found[n]) for n in sorted(found, key=lambda n: (n != "gt", n))}

    if pm is None:
        pm = find_plate_map(path)
    meta = {}
    if (path / META_NAME).is_file():
        try:
            meta = json.loads((path / META_NAME).read_text())
        except (OSError, ValueError) as e:
            raise PlateError(f"{path / META_NAME}: unreadable ({e})") from None
    meta.setdefault("layout", layout)
    return plate_from_planes(
        path, "tiff", rows, names, channel_names, pixel_size, selection, pm,
        metadata=meta, load_labels=load_labels, default_name=lambda c: f"{prefix}{c}",
    )


def _tiff_pixel_size(f: Path) -> tuple[float, float] | None:
    """(y, x) µm from TIFF resolution tags when the unit is µm (ImageJ) or cm."""
    import tifffile

    try:
        with tifffile.TiffFile(f) as t:
            page = t.pages[0]
            xr, yr = page.tags.get("XResolution"), page.tags.get("YResolution")
            unit = (t.imagej_metadata or {}).get("unit", "")
            resunit = page.tags.get("ResolutionUnit")
            if xr is None or yr is None:
                return None
            px = xr.value[1] / xr.value[0]
            py = yr.value[1] / yr.value[0]
    except Exception as e:  # noqa: BLE001
        raise PlateError(f"{f}: unreadable TIFF ({type(e).__name__}: {e})") from None
    if unit in ("um", "µm", "micron", "\\u00B5m"):
        return (py, px)
    if resunit is not None and int(resunit.value) == 3:  # centimetre
        return (py * 1e4, px * 1e4)
    return None

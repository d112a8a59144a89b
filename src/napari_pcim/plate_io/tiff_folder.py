"""Read folders of per-field instrument TIFFs (one file per well, site and channel) as a plate.

File names are matched like instrument exports (ImageXpress ``plate_B03_s1_w2.tif``,
BBBC-style ``..._A01_w1_<GUID>.tif``, Operetta ``r02c03f01p01-ch1sk1fk1fl1.tiff``) or
by a custom regex with named groups ``well`` (or ``row`` + ``column``), ``site``
(optional) and ``channel``. Instrument sites count from 1; a well's fields are its
sites in ascending order, 0-based (``_s1`` is field 0). Channel names come from an
ImageXpress ``.HTD`` file when there is one. Label images are read from
``labels/<plate>_B03_s1_<name>.tif``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_pcim.plate_io.model import Backend, Plate, PlateError, check_channel_names
from napari_pcim.plate_io.plate_map import find_plate_map
from napari_pcim.plate_io.wells import split_well, well_name, well_sort_key

#: napari-pcim's plate attributes, stored beside the TIFFs of a plate it wrote.
META_NAME = "napari_pcim.json"

_GUID = r"(?:_?[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})?"
#: Default filename patterns for TIFF folders, tried in order (``re.search``).
DEFAULT_PATTERNS: tuple[str, ...] = (
    # ImageXpress "<plate>_B03_s1_w2.tif" (+ optional GUID), BBBC "..._A01_w1_<GUID>.tif"
    r"(?:^|_)(?P<well>[A-Za-z]{1,2}\d{1,3})(?:_s(?P<site>\d+))?_w(?P<channel>\d)"
    + _GUID
    + r"\.tiff?$",
    # Operetta / Harmony "r02c03f01p01-ch1sk1fk1fl1.tiff"
    r"^r(?P<row>\d{2})c(?P<column>\d{2})f(?P<site>\d+)p\d+-ch(?P<channel>\d+)[^.]*\.tiff?$",
)
#: Label files of a TIFF plate: labels/<plate>_B03_s1_<name>.tif
LABEL_PATTERN = (
    r"(?:^|_)(?P<well>[A-Za-z]{1,2}\d{1,3})_s(?P<site>\d+)_(?P<name>[A-Za-z][A-Za-z0-9]*)\.tiff?$"
)


def open_tiff_folder(
    path: Path, pattern: str | None, pm: dict | None, channel_names: Sequence[str] | None
) -> Plate:
    """The TIFF folder at ``path`` as a :class:`Plate` (``pattern``: a custom file-name regex)."""
    files = sorted(
        p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (".tif", ".tiff")
    )
    if not files:
        raise PlateError(f"{path}: folder holds no .tif/.tiff files (and is not a zarr plate)")
    patterns = [pattern] if pattern else list(DEFAULT_PATTERNS)
    compiled = []
    for p in patterns:
        try:
            rx = re.compile(p)
        except re.error as e:
            raise PlateError(f"invalid filename pattern {p!r}: {e}") from None
        groups = set(rx.groupindex)
        if "channel" not in groups or not ("well" in groups or {"row", "column"} <= groups):
            raise PlateError(
                f"filename pattern {p!r} needs named groups 'channel' and 'well' "
                "(or 'row' and 'column')"
            )
        compiled.append(rx)

    # (well, site) -> {channel: file}; first pattern that matches any file wins.
    table: dict[tuple[str, int], dict[int, Path]] = {}
    for rx in compiled:
        for f in files:
            m = rx.search(f.name)
            if not m:
                continue
            g = m.groupdict()
            try:
                well = (
                    well_name(*split_well(g["well"]))
                    if g.get("well")
                    else well_name(int(g["row"]) - 1, g["column"])
                )
            except ValueError as e:
                raise PlateError(f"{f}: {e}") from None
            site = int(g["site"]) if g.get("site") else 1
            ch = int(g["channel"])
            slot = table.setdefault((well, site), {})
            if ch in slot:
                raise PlateError(
                    f"{path}: two files for well {well} site {site} channel {ch}: "
                    f"{slot[ch].name} and {f.name}"
                )
            slot[ch] = f
        if table:
            break
    if not table:
        shown = " | ".join(patterns)
        raise PlateError(
            f"{path}: no file name matches the pattern {shown!r} (e.g. {files[0].name!r}); "
            "pass pattern= with named groups well, site, channel"
        )

    # Every field must hold the same channels; name both fields when one differs.
    keys = sorted(table, key=lambda k: (well_sort_key(k[0]), k[1]))
    ref_key, ref = keys[0], sorted(table[keys[0]])
    for k in keys[1:]:
        chans = sorted(table[k])
        if chans != ref:
            raise PlateError(
                f"{path}: field {k[0]} s{k[1]} has channel(s) {chans} ({len(chans)}) but field "
                f"{ref_key[0]} s{ref_key[1]} has {ref} ({len(ref)})"
            )
    fields: dict[str, list[tuple[str, int, list[Path]]]] = {}
    for well, site in keys:
        fields.setdefault(well, []).append((well, site, [table[(well, site)][c] for c in ref]))

    first = fields[keys[0][0]][0][2][0]
    pixel_size = _tiff_pixel_size(first)
    if channel_names is not None:
        names = check_channel_names(path, channel_names, len(ref))
    else:
        names = _htd_channel_names(path, len(ref)) or [f"w{c}" for c in ref]

    label_dir = path / "labels"
    label_files: dict[tuple[str, int], dict[str, Path]] = {}
    if label_dir.is_dir():
        lrx = re.compile(LABEL_PATTERN)
        for f in sorted(label_dir.iterdir()):
            m = lrx.search(f.name)
            if m:
                key = (well_name(*split_well(m["well"])), int(m["site"]))
                label_files.setdefault(key, {})[m["name"]] = f

    def load(h: tuple[str, int, list[Path]]) -> np.ndarray:
        """Stack the channel files of one field into (C, Y, X)."""
        import tifffile

        planes = []
        for f in h[2]:
            try:
                a = tifffile.imread(f)
            except Exception as e:  # noqa: BLE001
                raise PlateError(f"{f}: unreadable TIFF ({type(e).__name__}: {e})") from None
            if a.ndim != 2:
                raise PlateError(f"{f}: expected one 2-D plane per file, got shape {a.shape}")
            planes.append(a)
        shapes = {p.shape for p in planes}
        if len(shapes) > 1:
            raise PlateError(
                f"{h[2][0].parent}: channel files of {h[0]} s{h[1]} differ in shape: "
                f"{sorted(shapes)}"
            )
        return np.stack(planes)

    def load_labels(h: tuple[str, int, list[Path]]) -> dict[str, np.ndarray]:
        """The label files of one field, ``gt`` first."""
        import tifffile

        found = label_files.get((h[0], h[1]), {})
        return {n: tifffile.imread(found[n]) for n in sorted(found, key=lambda n: (n != "gt", n))}

    backend = Backend(fields, load, load_labels, lambda h: str(h[2][0]))
    if pm is None:
        pm = find_plate_map(path)
    meta = {}
    if (path / META_NAME).is_file():
        try:
            meta = json.loads((path / META_NAME).read_text())
        except (OSError, ValueError) as e:
            raise PlateError(f"{path / META_NAME}: unreadable ({e})") from None
    return Plate(path, "tiff", backend, names, pixel_size, pm, metadata=meta)


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


def _htd_channel_names(path: Path, n: int) -> list[str] | None:
    """Wavelength names from an ImageXpress ``.HTD`` file in the folder ("WaveName1", "DAPI")."""
    for htd in sorted(path.glob("*.HTD")) + sorted(path.glob("*.htd")):
        names = {}
        for line in htd.read_text(errors="replace").splitlines():
            m = re.match(r'\s*"WaveName(\d+)"\s*,\s*"([^"]*)"', line)
            if m:
                names[int(m.group(1))] = m.group(2)
        if len(names) == n:
            return [names[k] for k in sorted(names)]
    return None

"""Open high-content-imaging plates as a `Plate`, and write plates (Qt-free, no torch).

``open_plate(source)`` accepts

- an OME-Zarr HCS plate (NGFF 0.4 on zarr format 2, or NGFF 0.5 on zarr v3): plate and
  well metadata are read at once, pixel arrays lazily on ``read_field``;
- a folder of per-field TIFFs, one file per well/site/channel, named like instrument
  exports (ImageXpress ``plate_B03_s1_w2.tif``, BBBC-style ``..._A01_w1_<GUID>.tif``,
  Operetta ``r02c03f01p01-ch1sk1fk1fl1.tiff``) or by a custom regex with named
  groups ``well`` (or ``row`` + ``column``), ``site`` (optional) and ``channel``;
- any single file bioio can read (OME-TIFF, CZI, ND2 with their plugin), or an
  already-open ``bioio.BioImage``/aicsimageio ``AICSImage``: scenes become fields,
  grouped by well when scene names contain well names (``B03``, ``Well B3``).

Well conditions come from a plate-map CSV (``well,condition,phenotype,edge``): the
``plate_map`` argument, a ``plate_map.csv`` inside or beside the plate, or the plate's
zarr attributes. Every problem is raised as one `PlateError` naming the file.

The writers (`ZarrPlateWriter`, `TiffPlateWriter`) are used by ``synth.make_plate``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PLATE_MAP_NAME = "plate_map.csv"
META_NAME = "napari_pcim.json"  # napari-pcim's plate attributes beside a TIFF plate
PLATE_MAP_COLUMNS = ("well", "condition", "phenotype", "edge")
# Rows and columns of the standard plate formats.
PLATE_FORMATS = {96: (8, 12), 384: (16, 24), 1536: (32, 48)}

_GUID = r"(?:_?[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})?"
# Default filename patterns for TIFF folders, tried in order (``re.search``).
DEFAULT_PATTERNS: tuple[str, ...] = (
    # ImageXpress "<plate>_B03_s1_w2.tif" (+ optional GUID), BBBC "..._A01_w1_<GUID>.tif"
    r"(?:^|_)(?P<well>[A-Za-z]{1,2}\d{1,3})(?:_s(?P<site>\d+))?_w(?P<channel>\d)"
    + _GUID
    + r"\.tiff?$",
    # Operetta / Harmony "r02c03f01p01-ch1sk1fk1fl1.tiff"
    r"^r(?P<row>\d{2})c(?P<column>\d{2})f(?P<site>\d+)p\d+-ch(?P<channel>\d+)[^.]*\.tiff?$",
)
# Label files of a TIFF plate: labels/<plate>_B03_s1_<name>.tif
_LABEL_PATTERN = (
    r"(?:^|_)(?P<well>[A-Za-z]{1,2}\d{1,3})_s(?P<site>\d+)_(?P<name>[A-Za-z][A-Za-z0-9]*)\.tiff?$"
)
# A well name inside a scene name: "B03", "Well B3", "B3_Field1" (not "C1" in "Scene C12x").
_SCENE_WELL = re.compile(r"(?:^|[^A-Za-z0-9])(?:well[\s_-]*)?([A-Pa-p])(\d{1,2})(?![0-9])", re.I)


class PlateError(ValueError):
    """A plate cannot be opened or read; the message names the file and the problem."""


# --------------------------------------------------------------------------- naming


def well_name(row: int | str, column: int | str) -> str:
    """Canonical well name: ``well_name(1, 3) == well_name("B", "3") == "B03"``.

    Integer rows are 0-based; columns are 1-based.
    """
    r = row if isinstance(row, str) and row.isalpha() else _row_letters(int(row))
    return f"{r.upper()}{int(column):02d}"


def _row_letters(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA (1536-well plates)."""
    return chr(65 + index) if index < 26 else "A" + chr(65 + index - 26)


def split_well(well: str) -> tuple[str, int]:
    """``"B03" -> ("B", 3)``; raises ValueError on a malformed name."""
    m = re.fullmatch(r"([A-Za-z]{1,2})(\d{1,3})", well.strip())
    if not m:
        raise ValueError(f"not a well name: {well!r} (expected e.g. 'B03')")
    return m.group(1).upper(), int(m.group(2))


def _row_index(letters: str) -> int:
    return ord(letters[0]) - 65 if len(letters) == 1 else 26 + ord(letters[1]) - 65


def _well_sort_key(well: str) -> tuple[int, int]:
    r, c = split_well(well)
    return _row_index(r), c


def _guess_format(wells: Sequence[str]) -> int | None:
    """Smallest standard format whose grid holds every well, None if none does."""
    if not wells:
        return None
    max_r = max(_row_index(split_well(w)[0]) for w in wells) + 1
    max_c = max(split_well(w)[1] for w in wells)
    for fmt, (nr, nc) in sorted(PLATE_FORMATS.items()):
        if max_r <= nr and max_c <= nc:
            return fmt
    return None


# ------------------------------------------------------------------------ plate map


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
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=PLATE_MAP_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in PLATE_MAP_COLUMNS})
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- Plate


@dataclass
class _Backend:
    """How one plate kind lists and loads its fields (one instance per open plate)."""

    fields: dict[str, list[Any]]  # well -> per-field handle (backend specific)
    load: Callable[[Any], np.ndarray]  # handle -> (C, Y, X)
    load_labels: Callable[[Any], dict[str, np.ndarray]]
    describe: Callable[[Any], str]  # handle -> file/path shown in errors


class Plate:
    """An open plate: well/field layout, channel names, pixel size, conditions; lazy pixels.

    Attributes: ``path``, ``rows`` (row letters of the plate format), ``columns``
    (1-based ints), ``wells`` (present wells, sorted), ``channel_names``,
    ``pixel_size`` ((y, x) µm or None), ``conditions`` {well: str}, ``phenotypes``
    {well: "control"|"treated"} where known, ``plate_format`` (96/384/1536/None), ``kind``
    ("zarr", "tiff" or "bioio"), ``metadata`` (napari-pcim's own plate attributes, e.g.
    the synthetic ``phenotype``; empty for other plates), ``edge_wells``.
    """

    def __init__(
        self,
        path: Path,
        kind: str,
        backend: _Backend,
        channel_names: list[str],
        pixel_size: tuple[float, float] | None,
        plate_map: dict[str, dict[str, str]] | None,
        rows: list[str] | None = None,
        columns: list[int] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.kind = kind
        self._backend = backend
        self.wells: list[str] = sorted(backend.fields, key=_well_sort_key)
        self.channel_names = list(channel_names)
        self.pixel_size = pixel_size
        self.plate_format = _guess_format(self.wells)
        if rows is None or columns is None:
            nr, nc = PLATE_FORMATS.get(self.plate_format or 0, (0, 0))
            if not nr:  # unknown format: the span of the present wells
                nr = max(_row_index(split_well(w)[0]) for w in self.wells) + 1 if self.wells else 0
                nc = max(split_well(w)[1] for w in self.wells) if self.wells else 0
            rows, columns = [_row_letters(i) for i in range(nr)], list(range(1, nc + 1))
        self.rows, self.columns = list(rows), list(columns)
        pm = plate_map or {}
        self.conditions: dict[str, str] = {
            w: v["condition"] for w, v in pm.items() if v.get("condition")
        }
        self.phenotypes: dict[str, str] = {
            w: v["phenotype"] for w, v in pm.items() if v.get("phenotype") in ("control", "treated")
        }
        self.edge_wells: set[str] = {
            w for w, v in pm.items() if str(v.get("edge", "")).lower() in ("1", "true", "yes")
        }
        self._first_shape: tuple[tuple[str, int], int] | None = None

    def __repr__(self) -> str:
        return (
            f"Plate({str(self.path)!r}, kind={self.kind!r}, wells={len(self.wells)}, "
            f"channels={self.channel_names}, format={self.plate_format})"
        )

    def n_fields(self, well: str) -> int:
        """Number of fields (sites) imaged in ``well``."""
        return len(self._handles(well))

    def iter_fields(self) -> Iterator[tuple[str, int]]:
        """All (well, field) pairs in plate order."""
        for w in self.wells:
            for f in range(self.n_fields(w)):
                yield w, f

    def _handles(self, well: str) -> list[Any]:
        try:
            key = well_name(*split_well(well))
        except ValueError as e:
            raise PlateError(f"{self.path}: {e}") from None
        if key not in self._backend.fields:
            shown = ", ".join(self.wells[:8]) + (" ..." if len(self.wells) > 8 else "")
            raise PlateError(
                f"{self.path}: no well {well!r} in this plate (wells: {shown or 'none'})"
            )
        return self._backend.fields[key]

    def _handle(self, well: str, field: int) -> Any:
        handles = self._handles(well)
        if not 0 <= int(field) < len(handles):
            raise PlateError(
                f"{self.path}: well {well} has {len(handles)} field(s) (0-based), no field {field}"
            )
        return handles[int(field)]

    def read_field(self, well: str, field: int = 0) -> np.ndarray:
        """The raw (C, Y, X) field of ``well``/``field`` (0-based), read from disk now."""
        h = self._handle(well, field)
        try:
            data = np.asarray(self._backend.load(h))
        except PlateError:
            raise
        except Exception as e:  # noqa: BLE001 - any reader failure becomes one clear error
            raise PlateError(
                f"{self._backend.describe(h)}: cannot read field ({type(e).__name__}: {e})"
            ) from e
        if data.ndim == 2:
            data = data[None]
        if data.ndim != 3:
            raise PlateError(
                f"{self._backend.describe(h)}: expected a (C, Y, X) field, got shape {data.shape}"
            )
        # All fields must have the same channel count; name both fields if not.
        if self._first_shape is None:
            self._first_shape = ((well_name(*split_well(well)), int(field)), data.shape[0])
        (w0, f0), c0 = self._first_shape
        if data.shape[0] != c0:
            raise PlateError(
                f"{self.path}: field {well_name(*split_well(well))} f{field} has "
                f"{data.shape[0]} channel(s) but field {w0} f{f0} has {c0}"
            )
        if self.channel_names and data.shape[0] != len(self.channel_names):
            raise PlateError(
                f"{self._backend.describe(h)}: {data.shape[0]} channel(s) but the plate names "
                f"{len(self.channel_names)} ({', '.join(self.channel_names)})"
            )
        return data

    def read_labels(self, well: str, field: int = 0) -> dict[str, np.ndarray]:
        """Label images stored with the field, ``{name: (Y, X) array}`` (empty if none)."""
        h = self._handle(well, field)
        try:
            return {k: np.asarray(v) for k, v in self._backend.load_labels(h).items()}
        except PlateError:
            raise
        except Exception as e:  # noqa: BLE001
            raise PlateError(
                f"{self._backend.describe(h)}: cannot read labels ({type(e).__name__}: {e})"
            ) from e


# ------------------------------------------------------------------------ open_plate


def open_plate(
    source: str | os.PathLike | Any,
    *,
    pattern: str | None = None,
    plate_map: str | os.PathLike | None = None,
    channel_names: Sequence[str] | None = None,
) -> Plate:
    """Open an OME-Zarr HCS plate, a TIFF-folder plate, a bioio file or an open BioImage.

    ``pattern`` (TIFF folders): regex with named groups ``well`` (or ``row`` and
    ``column``), ``channel`` and optionally ``site``. ``plate_map``: a plate-map CSV
    overriding the one found with the plate. ``channel_names`` overrides stored names.
    """
    pm = read_plate_map(plate_map) if plate_map is not None else None
    if not isinstance(source, (str, os.PathLike)):
        if all(hasattr(source, a) for a in ("scenes", "set_scene", "get_image_data")):
            # bioio keeps the path on its reader, aicsimageio on the object itself.
            where = getattr(getattr(source, "reader", None), "_path", None) or getattr(
                source, "_path", None
            )
            return _open_bioio(source, Path(str(where or "<image object>")), pm, channel_names)
        raise PlateError(f"cannot open a plate from a {type(source).__name__} object")
    path = Path(source).expanduser()
    if not path.exists():
        raise PlateError(f"{path}: no such file or folder")
    if path.is_dir():
        if _zarr_attrs_file(path) is not None:
            return _open_zarr(path, pm, channel_names)
        return _open_tiff_folder(path, pattern, pm, channel_names)
    try:
        from bioio import BioImage

        img = BioImage(path)
    except Exception as e:  # noqa: BLE001 - bioio raises many kinds for unreadable files
        raise PlateError(f"{path}: not a readable image file ({type(e).__name__}: {e})") from None
    return _open_bioio(img, path, pm, channel_names)


def _find_plate_map(path: Path) -> dict[str, dict[str, str]] | None:
    """A plate-map CSV inside the plate folder, or beside it (``<name>_plate_map.csv``,
    ``plate_map.csv``)."""
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


def _check_channel_names(path: Path, names: Sequence[str], n: int) -> list[str]:
    names = [str(x) for x in names]
    if len(names) != n:
        raise PlateError(
            f"{path}: {len(names)} channel name(s) given ({', '.join(names)}) "
            f"but fields have {n} channel(s)"
        )
    return names


# ----------------------------------------------------------------------- OME-Zarr


def _zarr_attrs_file(path: Path) -> Path | None:
    for name in ("zarr.json", ".zattrs", ".zgroup"):
        if (path / name).is_file():
            return path / name
    return None


def _attrs(node: Path) -> dict[str, Any]:
    """Attributes of a local zarr group: ``.zattrs`` (format 2) or ``zarr.json`` (format 3).

    Read as plain JSON: opening each of a plate's wells through zarr costs ~100x more.
    """
    try:
        if (node / "zarr.json").is_file():
            return json.loads((node / "zarr.json").read_text()).get("attributes", {})
        if (node / ".zattrs").is_file():
            return json.loads((node / ".zattrs").read_text())
        if (node / ".zgroup").is_file():
            return {}
    except (OSError, ValueError) as e:
        raise PlateError(f"{node}: unreadable zarr metadata ({e})") from None
    raise PlateError(f"{node}: not a zarr group (no zarr.json or .zgroup)")


def _ome(attrs: dict[str, Any]) -> dict[str, Any]:
    """NGFF 0.5 nests metadata under "ome"; 0.4 keeps it at the top level."""
    return attrs.get("ome", attrs)


def _open_array(path: Path) -> Any:
    import zarr

    try:
        return zarr.open_array(str(path), mode="r")
    except Exception as e:  # noqa: BLE001
        raise PlateError(f"{path}: cannot open zarr array ({type(e).__name__}: {e})") from None


def _open_zarr(path: Path, pm: dict | None, channel_names: Sequence[str] | None) -> Plate:
    attrs = _attrs(path)
    plate = _ome(attrs).get("plate")
    if plate is None:
        if "multiscales" in _ome(attrs):  # a single OME-Zarr image: one well, one field
            return _open_zarr_image(path, pm, channel_names)
        raise PlateError(f"{path}: zarr group has no NGFF 'plate' metadata (not an HCS plate)")
    try:
        rows = [r["name"] for r in plate["rows"]]
        cols = [int(c["name"]) for c in plate["columns"]]
        well_paths = [w["path"] for w in plate["wells"]]
    except (KeyError, TypeError, ValueError) as e:
        raise PlateError(f"{path}: malformed NGFF plate metadata ({e})") from None

    fields: dict[str, list[Path]] = {}
    for wp in well_paths:
        r, c = wp.split("/")
        try:
            images = [im["path"] for im in _ome(_attrs(path / wp))["well"]["images"]]
        except (KeyError, TypeError) as e:
            raise PlateError(
                f"{path / wp}: malformed or missing NGFF well metadata ({e})"
            ) from None
        fields[well_name(r, c)] = [path / wp / im for im in images]

    meta = attrs.get("napari_pcim", {})
    if pm is None:
        pm = _find_plate_map(path)
    if pm is None and meta.get("plate_map"):
        pm = {
            r["well"]: {k: str(r.get(k, "")) for k in PLATE_MAP_COLUMNS[1:]}
            for r in meta["plate_map"]
        }

    first = next((f for fl in fields.values() for f in fl), None)
    names: list[str] = []
    pixel_size = None
    if first is not None:
        names, pixel_size, n_channels, _ = _zarr_image_meta(first)
        if channel_names is not None:
            names = _check_channel_names(path, channel_names, n_channels)
    backend = _Backend(fields, _load_zarr_image, _load_zarr_labels, str)
    return Plate(path, "zarr", backend, names, pixel_size, pm, rows, cols, metadata=meta)


def _load_zarr_image(image: Path) -> np.ndarray:
    """The full-resolution (C, Y, X) data of an NGFF image group."""
    _, _, _, ds = _zarr_image_meta(image)
    return _squeeze_to_cyx(_open_array(image / ds), _zarr_axes(_attrs(image)), image)


def _load_zarr_labels(image: Path) -> dict[str, np.ndarray]:
    """The NGFF image-labels of an image group, ``{name: (Y, X)}``."""
    if _zarr_attrs_file(image / "labels") is None:
        return {}
    out = {}
    for name in _ome(_attrs(image / "labels")).get("labels", []):
        ms = _ome(_attrs(image / "labels" / name))["multiscales"][0]
        arr = np.asarray(_open_array(image / "labels" / name / ms["datasets"][0]["path"])[...])
        out[name] = arr.reshape(arr.shape[-2:])
    return out


def _zarr_axes(attrs: dict[str, Any]) -> list[str]:
    ms = _ome(attrs)["multiscales"][0]
    axes = ms.get("axes") or ["t", "c", "z", "y", "x"]
    return [a["name"] if isinstance(a, dict) else a for a in axes]


def _zarr_image_meta(image: Path) -> tuple[list[str], tuple[float, float] | None, int, str]:
    """Channel names, (y, x) pixel size, channel count and full-resolution dataset of an image."""
    try:
        attrs = _attrs(image)
        ome = _ome(attrs)
        ds = ome["multiscales"][0]["datasets"][0]
        axes = _zarr_axes(attrs)
    except (KeyError, IndexError, TypeError) as e:
        raise PlateError(f"{image}: malformed or missing NGFF multiscales metadata ({e})") from None
    shape = _open_array(image / ds["path"]).shape
    n_c = shape[axes.index("c")] if "c" in axes else 1
    names = [
        ch.get("label", f"C{i}") for i, ch in enumerate(ome.get("omero", {}).get("channels", []))
    ]
    if len(names) != n_c:
        names = [f"C{i}" for i in range(n_c)]
    pixel_size = None
    for t in ds.get("coordinateTransformations", []):
        if t.get("type") == "scale" and "y" in axes and "x" in axes:
            pixel_size = (float(t["scale"][axes.index("y")]), float(t["scale"][axes.index("x")]))
    return names, pixel_size, n_c, ds["path"]


def _squeeze_to_cyx(arr: Any, axes: list[str], where: Path) -> np.ndarray:
    """Read an NGFF array with ``axes`` as (C, Y, X): first t and middle z, channel axis kept."""
    index = []
    for a, n in zip(axes, arr.shape):
        if a == "t":
            index.append(0)
        elif a == "z":
            index.append(n // 2)
        else:
            index.append(slice(None))
    data = np.asarray(arr[tuple(index)])
    kept = [a for a in axes if a not in ("t", "z")]
    if "c" not in kept:
        data, kept = data[None], ["c", *kept]
    if kept != ["c", "y", "x"]:
        raise PlateError(f"{where}: unsupported axes {axes}")
    return data


def _open_zarr_image(path: Path, pm: dict | None, channel_names: Sequence[str] | None) -> Plate:
    """A single OME-Zarr image opened as a one-field plate (well A01)."""
    names, pixel_size, n_c, _ = _zarr_image_meta(path)
    if channel_names is not None:
        names = _check_channel_names(path, channel_names, n_c)
    backend = _Backend({"A01": [path]}, _load_zarr_image, _load_zarr_labels, str)
    return Plate(
        path, "zarr", backend, names, pixel_size, pm if pm is not None else _find_plate_map(path)
    )


# --------------------------------------------------------------------- TIFF folders


def _open_tiff_folder(
    path: Path, pattern: str | None, pm: dict | None, channel_names: Sequence[str] | None
) -> Plate:
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
    keys = sorted(table, key=lambda k: (_well_sort_key(k[0]), k[1]))
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
        names = _check_channel_names(path, channel_names, len(ref))
    else:
        names = _htd_channel_names(path, len(ref)) or [f"w{c}" for c in ref]

    label_dir = path / "labels"
    label_files: dict[tuple[str, int], dict[str, Path]] = {}
    if label_dir.is_dir():
        lrx = re.compile(_LABEL_PATTERN)
        for f in sorted(label_dir.iterdir()):
            m = lrx.search(f.name)
            if m:
                key = (well_name(*split_well(m["well"])), int(m["site"]))
                label_files.setdefault(key, {})[m["name"]] = f

    def load(h: tuple[str, int, list[Path]]) -> np.ndarray:
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
        import tifffile

        found = label_files.get((h[0], h[1]), {})
        return {n: tifffile.imread(found[n]) for n in sorted(found, key=lambda n: (n != "gt", n))}

    backend = _Backend(fields, load, load_labels, lambda h: str(h[2][0]))
    if pm is None:
        pm = _find_plate_map(path)
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


# ------------------------------------------------------------------------ bioio files


def _open_bioio(
    img: Any, path: Path, pm: dict | None, channel_names: Sequence[str] | None
) -> Plate:
    """Scenes of a bioio/aicsimageio image as fields, grouped by well when scenes name wells."""
    try:
        scenes = list(img.scenes)
    except Exception as e:  # noqa: BLE001
        raise PlateError(f"{path}: cannot list scenes ({type(e).__name__}: {e})") from None
    if not scenes:
        raise PlateError(f"{path}: image has no scenes")
    # OME readers give scene ids like "Image:0"; the OME Image names carry the well.
    names_for_wells = [str(s) for s in scenes]
    try:
        images = img.ome_metadata.images
        if len(images) == len(scenes):
            names_for_wells = [f"{im.name or ''} {s}" for im, s in zip(images, scenes)]
    except Exception:  # noqa: BLE001 - not an OME reader: scene ids only
        pass
    wells = []
    for s in names_for_wells:
        m = _SCENE_WELL.search(s)
        wells.append(well_name(m.group(1), m.group(2)) if m else None)
    if any(w is None for w in wells):  # not all scenes named by well: fields of one well
        wells = ["A01"] * len(scenes)

    # Channel counts per scene (metadata only), checked up front.
    counts = []
    for s in scenes:
        try:
            img.set_scene(s)
            counts.append(int(img.dims.C))
        except Exception as e:  # noqa: BLE001
            raise PlateError(f"{path}: cannot read scene {s!r} ({type(e).__name__}: {e})") from None
    for s, c in zip(scenes[1:], counts[1:]):
        if c != counts[0]:
            raise PlateError(
                f"{path}: scene {s!r} has {c} channel(s) but scene {scenes[0]!r} has {counts[0]}"
            )
    img.set_scene(scenes[0])
    if channel_names is not None:
        names = _check_channel_names(path, channel_names, counts[0])
    else:
        names = [str(c) for c in (img.channel_names or [])]
        if len(names) != counts[0]:
            names = [f"C{i}" for i in range(counts[0])]
    pixel_size = None
    try:
        pps = img.physical_pixel_sizes
        if pps.Y and pps.X:
            pixel_size = (float(pps.Y), float(pps.X))
    except Exception:  # noqa: BLE001 - some readers lack physical sizes
        pixel_size = None

    fields: dict[str, list[Any]] = {}
    for w, s in zip(wells, scenes):
        fields.setdefault(w, []).append(s)

    def load(scene: Any) -> np.ndarray:
        img.set_scene(scene)
        data = np.asarray(img.get_image_data("CZYX", T=0))
        return data.max(axis=1) if data.shape[1] > 1 else data[:, 0]  # Z stacks: max projection

    backend = _Backend(fields, load, lambda _s: {}, lambda s: f"{path} [scene {s}]")
    if pm is None and path.name != "<image object>":
        pm = _find_plate_map(path)
    return Plate(path, "bioio", backend, names, pixel_size, pm)


# --------------------------------------------------------------------------- writers


@contextmanager
def atomic_directory(out: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder that replaces ``out`` only if the block succeeds.

    A failure leaves ``out`` untouched (absent, or the old plate when overwriting).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():  # overwrite: move the old plate aside, then swap
        old = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.old")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()


def _label_colors(name: str, values: np.ndarray) -> list[dict[str, Any]]:
    if name == "gt":
        return [{"label-value": 1, "rgba": [255, 255, 0, 255]}]
    return []


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1))


def _zarr_v2_group(path: Path, attrs: dict[str, Any] | None = None) -> Path:
    """Create a zarr format 2 group folder (``.zgroup`` + ``.zattrs``)."""
    path.mkdir(parents=True, exist_ok=True)
    _write_json(path / ".zgroup", {"zarr_format": 2})
    if attrs:
        _write_json(path / ".zattrs", attrs)
    return path


def _zarr_v2_array(path: Path, data: np.ndarray, chunks: tuple[int, ...]) -> None:
    """Write ``data`` as a zarr format 2 array, Blosc-LZ4 chunks (zarr's default codec).

    ``chunks`` must tile the shape exactly (our chunks are whole planes).
    """
    from numcodecs import Blosc

    if any(n % c for n, c in zip(data.shape, chunks)):
        raise ValueError(f"chunks {chunks} do not tile shape {data.shape}")
    codec = Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE)
    path.mkdir(parents=True, exist_ok=True)
    _write_json(
        path / ".zarray",
        {
            "zarr_format": 2,
            "shape": list(data.shape),
            "chunks": list(chunks),
            "dtype": data.dtype.str,
            "compressor": codec.get_config(),
            "fill_value": 0,
            "order": "C",
            "filters": None,
            "dimension_separator": ".",
        },
    )
    for idx in np.ndindex(*(n // c for n, c in zip(data.shape, chunks))):
        block = data[tuple(slice(i * c, (i + 1) * c) for i, c in zip(idx, chunks))]
        (path / ".".join(map(str, idx))).write_bytes(codec.encode(np.ascontiguousarray(block)))


class ZarrPlateWriter:
    """Writes an NGFF 0.4 HCS plate (zarr format 2): plate/well/field groups, omero channel
    metadata, µm scale transforms and NGFF image-label groups per field.

    The files are written directly (JSON metadata + Blosc chunks from numcodecs, as zarr
    writes them) because zarr 3's per-operation overhead made plates ~10x slower to
    write; the tests read every plate back with zarr and bioio-ome-zarr.
    """

    def __init__(
        self,
        root: Path,
        *,
        name: str,
        rows: Sequence[str],
        columns: Sequence[int],
        wells: Sequence[str],
        n_fields: int,
        channel_names: Sequence[str],
        pixel_size: float,
        colors: Sequence[str] | None = None,
        extra_attrs: dict[str, Any] | None = None,
    ) -> None:
        self.root = Path(root)
        self.channel_names = list(channel_names)
        self.pixel_size = float(pixel_size)
        self.colors = list(colors or ["FFFFFF"] * len(channel_names))
        rows, columns = list(rows), list(columns)
        plate = {
            "version": "0.4",
            "name": name,
            "acquisitions": [{"id": 0, "name": name}],
            "field_count": n_fields,
            "rows": [{"name": r} for r in rows],
            "columns": [{"name": str(c)} for c in columns],
            "wells": [
                {"path": f"{r}/{c}", "rowIndex": rows.index(r), "columnIndex": columns.index(c)}
                for r, c in (split_well(w) for w in wells)
            ],
        }
        _zarr_v2_group(self.root, {"plate": plate, **(extra_attrs or {})})
        well_attrs = {
            "well": {
                "version": "0.4",
                "images": [{"path": str(i), "acquisition": 0} for i in range(n_fields)],
            }
        }
        for r in {split_well(w)[0] for w in wells}:
            _zarr_v2_group(self.root / r)
        for w in wells:
            r, c = split_well(w)
            _zarr_v2_group(self.root / r / str(c), well_attrs)

    def _multiscales(self, name: str, axes: Sequence[str]) -> list[dict[str, Any]]:
        ax = [
            {"name": a, "type": "channel"}
            if a == "c"
            else {"name": a, "type": "space", "unit": "micrometer"}
            for a in axes
        ]
        scale = [1.0 if a == "c" else self.pixel_size for a in axes]
        return [
            {
                "version": "0.4",
                "name": name,
                "axes": ax,
                "datasets": [
                    {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}
                ],
            }
        ]

    def write_field(
        self, well: str, field: int, image: np.ndarray, labels: dict[str, np.ndarray]
    ) -> None:
        """Write one (C, Y, X) field and its {name: (Y, X)} labels under ``well/field``."""
        channels = []
        for i, (n, col) in enumerate(zip(self.channel_names, self.colors)):
            lo, hi = np.percentile(image[i], (0.5, 99.8))
            channels.append(
                {
                    "label": n,
                    "color": col,
                    "active": True,
                    "coefficient": 1.0,
                    "family": "linear",
                    "inverted": False,
                    "window": {
                        "start": float(lo),
                        "end": float(hi),
                        "min": 0.0,
                        "max": float(np.iinfo(image.dtype).max),
                    },
                }
            )
        attrs = {
            "multiscales": self._multiscales(f"{well} f{field}", ["c", "y", "x"]),
            "omero": {
                "version": "0.4",
                "name": f"{well} f{field}",
                "channels": channels,
                "rdefs": {"model": "color"},
            },
        }
        r, c = split_well(well)
        g = _zarr_v2_group(self.root / r / str(c) / str(field), attrs)
        _zarr_v2_array(g / "0", image, (1, *image.shape[1:]))
        if labels:
            lg = _zarr_v2_group(g / "labels", {"labels": list(labels)})
            for name, lab in labels.items():
                g2 = _zarr_v2_group(
                    lg / name,
                    {
                        "multiscales": self._multiscales(name, ["y", "x"]),
                        "image-label": {
                            "version": "0.4",
                            "colors": _label_colors(name, lab),
                            "source": {"image": "../../"},
                        },
                    },
                )
                _zarr_v2_array(g2 / "0", lab, lab.shape)


class TiffPlateWriter:
    """Writes ImageXpress-style per-field TIFFs ``<plate>_B03_s1_w1.tif`` (site and channel
    1-based, ImageJ µm resolution tags), labels in ``labels/<plate>_B03_s1_<name>.tif``, and a
    ``<plate>.HTD`` listing the wavelength names."""

    def __init__(
        self,
        root: Path,
        *,
        name: str,
        rows: Sequence[str],
        columns: Sequence[int],
        n_fields: int,
        channel_names: Sequence[str],
        pixel_size: float,
        extra_attrs: dict[str, Any] | None = None,
    ) -> None:
        self.root, self.name, self.pixel_size = Path(root), name, float(pixel_size)
        if extra_attrs:
            _write_json(self.root / META_NAME, extra_attrs.get("napari_pcim", extra_attrs))
        (self.root / "labels").mkdir(exist_ok=True)
        lines = [
            '"HTSInfoFile", Version 1.0',
            f'"Description", "{name} (napari-pcim synthetic plate)"',
            f'"XWells", {len(columns)}',
            f'"YWells", {len(rows)}',
            '"Sites", TRUE',
            f'"XSites", {n_fields}',
            '"YSites", 1',
            f'"NWavelengths", {len(channel_names)}',
            *[f'"WaveName{i}", "{n}"' for i, n in enumerate(channel_names, start=1)],
            '"EndFile"',
        ]
        (self.root / f"{name}.HTD").write_text("\n".join(lines) + "\n")

    def _write(self, path: Path, plane: np.ndarray) -> None:
        import tifffile

        res = (1.0 / self.pixel_size, 1.0 / self.pixel_size)
        tifffile.imwrite(path, plane, imagej=True, resolution=res, metadata={"unit": "um"})

    def write_field(
        self, well: str, field: int, image: np.ndarray, labels: dict[str, np.ndarray]
    ) -> None:
        for c, plane in enumerate(image, start=1):
            self._write(self.root / f"{self.name}_{well}_s{field + 1}_w{c}.tif", plane)
        import tifffile

        for lname, lab in labels.items():
            # Plain (non-ImageJ) TIFF so int32 instance labels keep their dtype.
            tifffile.imwrite(
                self.root / "labels" / f"{self.name}_{well}_s{field + 1}_{lname}.tif", lab
            )


def plate_json_attrs(**meta: Any) -> dict[str, Any]:
    """napari-pcim's own plate attributes, JSON-safe (numpy scalars converted)."""
    return {
        "napari_pcim": json.loads(
            json.dumps(meta, default=lambda o: o.item() if hasattr(o, "item") else str(o))
        )
    }

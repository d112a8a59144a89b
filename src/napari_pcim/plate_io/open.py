"""``open_plate``: open any supported plate source with the reader that fits it.

- an OME-Zarr HCS plate or image folder (:mod:`.zarr_reader`);
- a Harmony export (Opera/Operetta ``Index.idx.xml``, :mod:`.harmony`), a CellVoyager
  measurement (``MeasurementData.mlf``, :mod:`.cellvoyager`), an ImageXpress ``.jdce``
  acquisition (read by ``bioio-imagexpress``);
- any other folder: instrument TIFFs (:mod:`.tiff_folder`: ImageXpress ``.HTD`` and
  ``TimePoint_n/ZStep_n``, bare Opera names, BBBC005, Cellomics, a custom pattern);
- a single file bioio can read, or an already-open ``bioio.BioImage`` / aicsimageio
  ``AICSImage`` (:mod:`.bioio_files`).

Well conditions come from a plate-map CSV (``well,condition,phenotype,edge``): the
``plate_map`` argument, a ``plate_map.csv`` inside or beside the plate, or the plate's
zarr attributes. Every problem is raised as one :class:`PlateError` naming the file.

``z`` and ``t`` choose the plane of z stacks and time series (:class:`PlaneSelection`);
the choice is recorded as ``plate.planes``. ``channel_map`` renames channels
(:meth:`Plate.with_channel_map`); ``channel_map=True`` applies the map saved beside
the plate (:mod:`.channel_map`); by default the saved map is applied when there is one,
so batch runs, the CLI and the GUI reuse it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from napari_pcim.plate_io import channel_map as cmap
from napari_pcim.plate_io.bioio_files import TIFF_SUFFIXES, check_tiff, open_bioio
from napari_pcim.plate_io.cellvoyager import is_cellvoyager, open_cellvoyager
from napari_pcim.plate_io.harmony import find_index, open_harmony
from napari_pcim.plate_io.model import Plate, PlateError
from napari_pcim.plate_io.planes import PlaneSelection
from napari_pcim.plate_io.plate_map import read_plate_map
from napari_pcim.plate_io.tiff_folder import open_tiff_folder
from napari_pcim.plate_io.zarr_planes import apply_selection
from napari_pcim.plate_io.zarr_reader import open_zarr, zarr_attrs_file


def jdce_file(path: Path) -> Path | None:
    """The ``.jdce`` descriptor of an ImageXpress acquisition folder (or the file itself)."""
    if path.is_file():
        return path if path.suffix.lower() == ".jdce" else None
    found = sorted(p for p in path.iterdir() if p.suffix.lower() == ".jdce" and p.is_file())
    return found[0] if found else None


def open_plate(
    source: str | os.PathLike | Any,
    *,
    pattern: str | None = None,
    plate_map: str | os.PathLike | None = None,
    channel_names: Sequence[str] | None = None,
    z: int | str | None = None,
    t: int | None = None,
    channel_map: dict[str, str] | str | bool | None = None,
) -> Plate:
    """Open an OME-Zarr HCS plate, an instrument folder, a bioio file or an open BioImage.

    ``pattern`` (TIFF folders): regex with named groups ``well`` (or ``row`` and
    ``column``), ``channel`` and optionally ``site``, ``z``, ``t``. ``plate_map``: a
    plate-map CSV overriding the one found with the plate. ``channel_names`` overrides
    stored names. ``z``: a 0-based plane index, ``"max"`` (maximum projection) or
    ``"middle"``; default: the maximum projection (the middle plane for OME-Zarr).
    ``t``: a 0-based time point (default 0). ``channel_map``: ``{plate channel: name}``,
    the text ``"w1=DAPI,w2=Actin"``, True for the map saved beside the plate, False for
    none; default (None): the saved map, if any, unless ``channel_names`` is given.
    """
    plate = _open(source, pattern, plate_map, channel_names, z, t)
    if channel_map is True or (channel_map is None and channel_names is None):
        saved = cmap.load_channel_map(plate.path) if isinstance(source, (str, os.PathLike)) else None
        return plate.with_channel_map(saved) if saved else plate
    if isinstance(channel_map, str):
        channel_map = cmap.parse_channel_map(channel_map)
    return plate.with_channel_map(channel_map) if channel_map else plate


def _open(
    source: Any,
    pattern: str | None,
    plate_map: Any,
    channel_names: Sequence[str] | None,
    z: int | str | None,
    t: int | None,
) -> Plate:
    pm = read_plate_map(plate_map) if plate_map is not None else None
    if not isinstance(source, (str, os.PathLike)):
        if all(hasattr(source, a) for a in ("scenes", "set_scene", "get_image_data")):
            # bioio keeps the path on its reader, aicsimageio on the object itself.
            where = getattr(getattr(source, "reader", None), "_path", None) or getattr(
                source, "_path", None
            )
            sel = PlaneSelection.parse(z, t)
            return open_bioio(source, Path(str(where or "<image object>")), pm, channel_names, sel)
        raise PlateError(f"cannot open a plate from a {type(source).__name__} object")
    path = Path(source).expanduser()
    if not path.exists():
        raise PlateError(f"{path}: no such file or folder")
    if path.is_dir() and zarr_attrs_file(path) is not None:
        sel = PlaneSelection.parse(z, t, default_z="middle") if (z, t) != (None, None) else None
        return apply_selection(open_zarr(path, pm, channel_names), sel)
    selection = PlaneSelection.parse(z, t)
    jdce = jdce_file(path)
    if path.is_dir() and not pattern:
        if (index := find_index(path)) is not None:
            return open_harmony(path, index, pm, channel_names, selection)
        if is_cellvoyager(path):
            return open_cellvoyager(path, pm, channel_names, selection)
    if path.is_dir() and (jdce is None or pattern):
        return open_tiff_folder(path, pattern, pm, channel_names, selection)
    if path.suffix.lower() in TIFF_SUFFIXES:
        check_tiff(path)
    try:
        from bioio import BioImage

        if jdce is not None:
            from bioio_imagexpress import Reader

            img = BioImage(jdce, reader=Reader)
        else:
            img = BioImage(path)
    except ImportError:
        raise PlateError(
            f"{path}: an ImageXpress .jdce acquisition needs bioio-imagexpress "
            "(pip install bioio-imagexpress)"
        ) from None
    except Exception as e:  # noqa: BLE001 - bioio raises many kinds for unreadable files
        raise PlateError(f"{path}: not a readable image file ({type(e).__name__}: {e})") from None
    return open_bioio(img, path, pm, channel_names, selection)

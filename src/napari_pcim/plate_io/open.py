"""``open_plate``: open any supported plate source with the reader that fits it.

- an OME-Zarr HCS plate or image folder (:mod:`.zarr_reader`);
- any other folder: instrument TIFFs (:mod:`.tiff_folder`);
- a single file bioio can read, or an already-open ``bioio.BioImage`` / aicsimageio
  ``AICSImage`` (:mod:`.bioio_files`).

Well conditions come from a plate-map CSV (``well,condition,phenotype,edge``): the
``plate_map`` argument, a ``plate_map.csv`` inside or beside the plate, or the plate's
zarr attributes. Every problem is raised as one :class:`PlateError` naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from napari_pcim.plate_io.bioio_files import TIFF_SUFFIXES, check_tiff, open_bioio
from napari_pcim.plate_io.model import Plate, PlateError
from napari_pcim.plate_io.plate_map import read_plate_map
from napari_pcim.plate_io.tiff_folder import open_tiff_folder
from napari_pcim.plate_io.zarr_reader import open_zarr, zarr_attrs_file


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
            return open_bioio(source, Path(str(where or "<image object>")), pm, channel_names)
        raise PlateError(f"cannot open a plate from a {type(source).__name__} object")
    path = Path(source).expanduser()
    if not path.exists():
        raise PlateError(f"{path}: no such file or folder")
    if path.is_dir():
        if zarr_attrs_file(path) is not None:
            return open_zarr(path, pm, channel_names)
        return open_tiff_folder(path, pattern, pm, channel_names)
    if path.suffix.lower() in TIFF_SUFFIXES:
        check_tiff(path)
    try:
        from bioio import BioImage

        img = BioImage(path)
    except Exception as e:  # noqa: BLE001 - bioio raises many kinds for unreadable files
        raise PlateError(f"{path}: not a readable image file ({type(e).__name__}: {e})") from None
    return open_bioio(img, path, pm, channel_names)

"""The z/time choice for OME-Zarr plates: read 5-D NGFF images by a :class:`PlaneSelection`.

:mod:`.zarr_reader` reads the first time point and the middle z plane. When the user
chooses another plane, the maximum projection or another time point,
:func:`apply_selection` gives the open plate a loader that reads only the planes the
choice needs (chunks checked as in :func:`~.zarr_reader.read_region`) and records the
choice as ``Plate.planes``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_pcim.plate_io import zarr_reader as zr
from napari_pcim.plate_io.model import Plate, PlateError
from napari_pcim.plate_io.planes import PlaneSelection


def _extents(image: Path) -> tuple[list[str], tuple[int, ...], str]:
    _, _, _, ds = zr._zarr_image_meta(image)
    return zr._zarr_axes(zr._attrs(image)), zr.array_shape(image / ds), ds


def apply_selection(plate: Plate, selection: PlaneSelection | None) -> Plate:
    """Record (and, if not the reader's default, apply) the z/time ``selection`` on ``plate``."""
    first = next((h for w in plate.wells for h in plate._backend.fields[w]), None)
    if first is None:
        return plate
    axes, shape, _ = _extents(first)
    n_z = shape[axes.index("z")] if "z" in axes else 1
    n_t = shape[axes.index("t")] if "t" in axes else 1
    selection = selection or PlaneSelection("middle", 0)
    selection.check(plate.path, n_z, n_t)
    plate.planes = selection.record(n_z, n_t)
    if selection == PlaneSelection("middle", 0):
        return plate  # what the zarr reader does already

    def load(image: Path) -> np.ndarray:
        """(C, Y, X) of one NGFF image by the z/time choice."""
        ax, shp, ds = _extents(image)
        index: list[int | slice] = []
        for a, n in zip(ax, shp):
            if a == "t":
                if selection.t >= n:
                    raise PlateError(f"{image}: no time point {selection.t}; it has {n}")
                index.append(selection.t)
            elif a == "z" and isinstance(selection.z, int):
                if selection.z >= n:
                    raise PlateError(f"{image}: no z plane {selection.z}; it has {n}")
                index.append(selection.z)
            elif a == "z" and selection.z == "middle":
                index.append(n // 2)
            else:
                index.append(slice(None))
        data = zr.read_region(zr._open_array(image / ds), tuple(index), image / ds)
        kept = [a for a, i in zip(ax, index) if isinstance(i, slice)]
        if "z" in kept:  # the maximum projection
            data, kept = data.max(axis=kept.index("z")), [a for a in kept if a != "z"]
        if "c" not in kept:
            data, kept = data[None], ["c", *kept]
        if kept != ["c", "y", "x"]:
            raise PlateError(f"{image}: unsupported axes {ax}")
        return data

    plate._backend.load = load
    return plate

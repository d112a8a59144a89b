"""Plate input/output: the :class:`Plate` model, well naming, the readers and the writers.

``open_plate(path)`` opens an OME-Zarr HCS plate, an instrument plate folder
(ImageXpress, Opera/Operetta, CellVoyager, other per-plane TIFFs) or a single
bioio-readable file as a :class:`Plate`; the writers make plates on disk.

Modules: :mod:`.wells` (well names, plate formats), :mod:`.plate_map` (plate-map CSVs),
:mod:`.model` (``Plate``, ``PlateError``), :mod:`.open` (``open_plate``) and its readers
:mod:`.zarr_reader` (+ :mod:`.zarr_planes`), :mod:`.tiff_folder` (+ :mod:`.imagexpress`),
:mod:`.harmony`, :mod:`.cellvoyager`, :mod:`.bioio_files`, all per-plane readers through
:mod:`.planes` (the plane table and the z/time choice); :mod:`.channel_map` (renaming
plate channels to a model's, saved beside the plate); :mod:`.writers` and
:mod:`.ngff` (NGFF metadata). The writers are imported on first use, so that reading
plates does not import ``ome-zarr-models``.
"""

from typing import Any

from napari_pcim.plate_io.model import Plate, PlateError
from napari_pcim.plate_io.open import open_plate
from napari_pcim.plate_io.plate_map import read_plate_map, write_plate_map
from napari_pcim.plate_io.wells import PLATE_FORMATS, split_well, well_name

_WRITERS = ("TiffPlateWriter", "ZarrPlateWriter", "plate_json_attrs")

__all__ = [
    "PLATE_FORMATS",
    "Plate",
    "PlateError",
    "TiffPlateWriter",
    "ZarrPlateWriter",
    "open_plate",
    "plate_json_attrs",
    "read_plate_map",
    "split_well",
    "well_name",
    "write_plate_map",
]


def __getattr__(name: str) -> Any:
    """Load the writers (and ``ome-zarr-models``) when first asked for."""
    if name in _WRITERS:
        from napari_pcim.plate_io import writers

        return getattr(writers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

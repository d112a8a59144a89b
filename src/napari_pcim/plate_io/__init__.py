"""Plate input/output: the :class:`Plate` model, well naming, the readers and the writers.

``open_plate(path)`` opens an OME-Zarr HCS plate, a folder of instrument TIFFs or a
single bioio-readable file as a :class:`Plate`; the writers make plates on disk.
"""

from napari_pcim.plate_io.plate import (
    PLATE_FORMATS,
    Plate,
    PlateError,
    TiffPlateWriter,
    ZarrPlateWriter,
    open_plate,
    read_plate_map,
    split_well,
    well_name,
    write_plate_map,
)

__all__ = [
    "PLATE_FORMATS",
    "Plate",
    "PlateError",
    "TiffPlateWriter",
    "ZarrPlateWriter",
    "open_plate",
    "read_plate_map",
    "split_well",
    "well_name",
    "write_plate_map",
]

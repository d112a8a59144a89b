"""npe2 reader: open a plate (OME-Zarr HCS, TIFF folder) or an OME-TIFF as napari layers.

``get_reader(path)`` returns a function that shows the first well's first field as
styled layers (see `napari_pcim.layers.field_layer_data`), or None when napari-pcim
cannot open ``path`` so that napari tries another reader. Browsing other wells and
fields is the Plate widget's job. No torch, no Qt.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from napari_pcim.layers import LayerDataTuple, field_layer_data
from napari_pcim.plate_io import Plate, PlateError, open_plate
from napari_pcim.vocabulary import FIRST_FIELD

ReaderFunction = Callable[[str | Sequence[str]], list[LayerDataTuple]]


def _single_path(path: str | os.PathLike | Sequence[str | os.PathLike]) -> Path | None:
    if isinstance(path, (list, tuple)):
        return Path(path[0]) if len(path) == 1 else None
    return Path(path)


def _can_open(p: Path) -> Plate | None:
    """The opened plate if ``p`` is something napari-pcim reads, else None (metadata only)."""
    name = p.name.lower()
    if not p.exists():
        return None
    if p.is_file() and not name.endswith((".ome.tif", ".ome.tiff")):
        return None
    try:
        return open_plate(p)
    except PlateError:
        return None


def plate_layers(
    plate: Plate, well: str | None = None, field: int = FIRST_FIELD
) -> list[LayerDataTuple]:
    """Layers of one field of an open plate (default: the first well's first field), named
    as everywhere (:func:`napari_pcim.layers.layer_prefix`)."""
    well = well or plate.wells[0]
    return field_layer_data(
        plate.read_field(well, field),
        plate.read_labels(well, field),
        plate.channel_names,
        plate.pixel_size,
        well,
        field,
        phenotype=plate.metadata.get("phenotype"),
        source=str(plate.path),
    )


def get_reader(path: str | Sequence[str]) -> ReaderFunction | None:
    """npe2 ``get_reader``: a reader for plates and OME-TIFFs napari-pcim can open, else None."""
    p = _single_path(path)
    if p is None:
        return None
    plate = _can_open(p)
    if plate is None or not plate.wells:
        return None

    def reader(_path: str | Sequence[str]) -> list[LayerDataTuple]:
        return plate_layers(plate)

    return reader

"""npe2 reader: open a plate (OME-Zarr HCS, TIFF folder) or an OME-TIFF as napari layers.

``get_reader(path)`` returns a function that shows the first well's first field as
styled layers (see `napari_pcim.layers.field_layer_data`), or None when ``path`` is
not napari-pcim's kind so that napari tries another reader. An OME-TIFF or NGFF
OME-Zarr that is napari-pcim's kind but broken (corrupt, missing chunks, unreadable)
gets a reader that shows the one-line error as a napari notification and adds no
layer. Browsing other wells and fields is the Plate widget's job. No torch, no Qt.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from napari_pcim.layers import LayerDataTuple, field_layer_data
from napari_pcim.plate_io import Plate, PlateError, open_plate
from napari_pcim.plate_io.zarr_reader import is_ngff
from napari_pcim.vocabulary import FIRST_FIELD

ReaderFunction = Callable[[str | Sequence[str]], list[LayerDataTuple]]


def _single_path(path: str | os.PathLike | Sequence[str | os.PathLike]) -> Path | None:
    if isinstance(path, (list, tuple)):
        return Path(path[0]) if len(path) == 1 else None
    return Path(path)


def _claims(p: Path) -> bool:
    """True for paths only napari-pcim should report on: OME-TIFF files and NGFF groups."""
    if p.is_file():
        return p.name.lower().endswith((".ome.tif", ".ome.tiff"))
    return p.is_dir() and is_ngff(p)


def _refusal(message: str) -> ReaderFunction:
    """A reader that shows ``message`` as an error notification and adds no layer."""

    def reader(_path: str | Sequence[str]) -> list[LayerDataTuple]:
        from napari.utils.notifications import show_error

        show_error(f"napari-pcim: {message}")
        return [(None,)]  # napari's "nothing to add" sentinel

    return reader


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
    if p is None or not p.exists():
        return None
    claimed = _claims(p)
    if p.is_file() and not claimed:
        return None
    try:
        plate = open_plate(p)
    except PlateError as exc:
        return _refusal(str(exc)) if claimed else None
    if not plate.wells:
        return _refusal(f"{p}: no wells") if claimed else None

    def reader(_path: str | Sequence[str]) -> list[LayerDataTuple]:
        try:
            return plate_layers(plate)
        except PlateError as exc:
            return _refusal(str(exc))(_path)

    return reader

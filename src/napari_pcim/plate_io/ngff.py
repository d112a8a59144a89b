"""NGFF 0.4 (OME-Zarr) metadata built and validated with ``ome-zarr-models``.

Each function returns the JSON-ready attributes of one zarr group — a plate, a well,
an image, a labels group or a label image — built from the library's pydantic
models, so a wrong field fails here, at writing time, with the model's message.
Used by :class:`~napari_pcim.plate_io.writers.ZarrPlateWriter` and by
:func:`napari_pcim.export.write_ome_zarr_image`.

Imported only by writers: ``ome-zarr-models`` (pydantic) costs ~0.4 s to import.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from ome_zarr_models.common.omero import Channel, Omero, Window
from ome_zarr_models.common.plate import Acquisition, Column, Row, WellInPlate
from ome_zarr_models.common.well_types import WellImage
from ome_zarr_models.v04.axes import Axis
from ome_zarr_models.v04.hcs import HCSAttrs
from ome_zarr_models.v04.image import ImageAttrs
from ome_zarr_models.v04.image_label import ImageLabelAttrs
from ome_zarr_models.v04.image_label_types import Color, Label, Source
from ome_zarr_models.v04.labels import LabelsAttrs
from ome_zarr_models.v04.multiscales import Dataset, Multiscale
from ome_zarr_models.v04.plate import Plate
from ome_zarr_models.v04.well import WellAttrs
from ome_zarr_models.v04.well_types import WellMeta
from pydantic import BaseModel

from napari_pcim.plate_io.wells import split_well

VERSION = "0.4"


def _dump(model: BaseModel) -> dict[str, Any]:
    """The model as plain JSON-able attributes (aliases such as ``image-label``, no nulls)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def plate_attrs(
    name: str, rows: Sequence[str], columns: Sequence[int], wells: Sequence[str], n_fields: int
) -> dict[str, Any]:
    """The ``plate`` attributes of an HCS plate: one acquisition, wells at ``<row>/<column>``."""
    rows, columns = list(rows), list(columns)
    plate = Plate(
        version=VERSION,
        name=name,
        acquisitions=[Acquisition(id=0, name=name)],
        field_count=n_fields,
        rows=[Row(name=r) for r in rows],
        columns=[Column(name=str(c)) for c in columns],
        wells=[
            WellInPlate(path=f"{r}/{c}", rowIndex=rows.index(r), columnIndex=columns.index(c))
            for r, c in (split_well(w) for w in wells)
        ],
    )
    return _dump(HCSAttrs(plate=plate))


def well_attrs(n_fields: int) -> dict[str, Any]:
    """The ``well`` attributes of a well whose fields are images ``"0"``..``n_fields - 1``."""
    images = [WellImage(path=str(i), acquisition=0) for i in range(n_fields)]
    return _dump(WellAttrs(well=WellMeta(version=VERSION, images=images)))


def multiscale(
    axes: Sequence[str], pixel_size: tuple[float, float] | None, name: str | None = None
) -> Multiscale:
    """A one-level multiscale (dataset ``"0"``) over ``axes`` (``c``, ``y``, ``x``).

    ``pixel_size`` (y, x) in µm gives the scale and the micrometer unit of the spatial
    axes; None leaves them unitless with scale 1. ``name`` is the multiscale's name.
    """
    ms = _multiscale(tuple(axes), None if pixel_size is None else tuple(map(float, pixel_size)))
    return ms if name is None else ms.model_copy(update={"name": name})


@functools.lru_cache(maxsize=16)
def _multiscale(axes: tuple[str, ...], pixel_size: tuple[float, float] | None) -> Multiscale:
    """The validated, unnamed multiscale (cached: validating one costs ~2 ms, per field)."""
    py, px = pixel_size if pixel_size is not None else (1.0, 1.0)
    unit = "micrometer" if pixel_size is not None else None
    ax = [
        Axis(name=a, type="channel") if a == "c" else Axis(name=a, type="space", unit=unit)
        for a in axes
    ]
    scale = [{"c": 1.0, "y": py, "x": px}[a] for a in axes]
    dataset = Dataset(path="0", coordinateTransformations=[{"type": "scale", "scale": scale}])
    return Multiscale(version=VERSION, axes=ax, datasets=(dataset,))


def omero_channel(
    label: str, color: str, window: tuple[float, float, float, float], **extra: Any
) -> Channel:
    """One omero channel: ``window`` is (start, end, min, max); ``extra`` keys are kept."""
    start, end, lo, hi = (float(v) for v in window)
    return Channel(
        label=label, color=color, window=Window(start=start, end=end, min=lo, max=hi), **extra
    )


def image_attrs(
    channels: Sequence[Channel],
    pixel_size: tuple[float, float] | None,
    name: str | None = None,
    **omero: Any,
) -> dict[str, Any]:
    """Attributes of a (C, Y, X) image: ``multiscales`` and ``omero``.

    ``name`` names both; ``omero`` holds extra omero keys (e.g. ``rdefs``).
    """
    return _dump(
        ImageAttrs(
            multiscales=[multiscale(["c", "y", "x"], pixel_size, name)],
            omero=Omero(version=VERSION, name=name, channels=list(channels), **omero),
        )
    )


def labels_attrs(names: Sequence[str]) -> dict[str, Any]:
    """Attributes of an image's ``labels`` group listing its label images."""
    return _dump(LabelsAttrs(labels=list(names)))


def label_image_attrs(
    pixel_size: tuple[float, float] | None,
    name: str | None = None,
    colors: Mapping[int, Sequence[int]] | None = None,
) -> dict[str, Any]:
    """Attributes of a (Y, X) label image inside ``<image>/labels/``; ``colors``: {value: RGBA}."""
    label = Label(
        version=VERSION,
        colors=None
        if colors is None
        else tuple(Color(label_value=v, rgba=tuple(c)) for v, c in colors.items()),
        source=Source(image="../../"),
    )
    return _dump(
        ImageLabelAttrs(multiscales=[multiscale(["y", "x"], pixel_size, name)], image_label=label)
    )

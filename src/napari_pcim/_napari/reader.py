"""npe2 reader: open a plate (OME-Zarr HCS, instrument folder), an OME-TIFF or napari-pcim's own export.

Claimed (napari-pcim reports its errors for them instead of passing them on): OME-TIFF
files, NGFF groups, instrument plate folders (an ImageXpress ``.HTD``, ``.jdce`` or
``TimePoint_n`` folder, an Opera/Operetta Harmony index, a CellVoyager
``MeasurementData.mlf``), those index files themselves (opening one opens its plate)
and ImageJ hyperstack TIFFs with several channels. Other folders of TIFFs are tried
and passed on (None) when they are not a plate.

``get_reader(path)`` returns a function that shows the first well's first field as
styled layers (see `napari_pcim.layers.field_layer_data`), or None when ``path`` is
not napari-pcim's kind so that napari tries another reader. An annotated field
written by :func:`napari_pcim.export.write_annotated_field` (the CLI's ``--out``,
the Export widget, File ▸ Save) comes back as it was exported: channels as image
layers, attribution maps as image layers with their metadata, labels as Labels
layers, all with their names (:func:`export_layers`). An OME-TIFF or NGFF
OME-Zarr that is napari-pcim's kind but broken (corrupt, missing chunks, unreadable)
gets a reader that shows the one-line error as a napari notification and adds no
layer. Browsing other wells and fields is the Plate widget's job. No torch, no Qt.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from napari_pcim.export import AnnotatedField, is_annotated_field, read_annotated_field
from napari_pcim.layers import KIND, SEP, LayerDataTuple, attribution_layer_data, field_layer_data
from napari_pcim.plate_io import Plate, PlateError, open_plate
from napari_pcim.plate_io.zarr_reader import is_ngff
from napari_pcim.vocabulary import FIRST_FIELD, field_label

ReaderFunction = Callable[[str | Sequence[str]], list[LayerDataTuple]]


def _single_path(path: str | os.PathLike | Sequence[str | os.PathLike]) -> Path | None:
    if isinstance(path, (list, tuple)):
        return Path(path[0]) if len(path) == 1 else None
    return Path(path)


#: Index files that stand for their plate folder (opening one opens the plate).
INDEX_SUFFIXES = (".htd", ".mlf", ".idx.xml")


def _plate_of_index(p: Path) -> Path:
    """The plate folder of an instrument index file, else ``p`` itself."""
    return p.parent if p.is_file() and p.name.lower().endswith(INDEX_SUFFIXES) else p


def _is_instrument_folder(p: Path) -> bool:
    """An ImageXpress, Opera/Operetta or CellVoyager plate folder (by its metadata files)."""
    from napari_pcim.plate_io.cellvoyager import is_cellvoyager
    from napari_pcim.plate_io.harmony import find_index
    from napari_pcim.plate_io.imagexpress import htd_files

    if find_index(p) is not None or is_cellvoyager(p) or htd_files(p):
        return True
    return any(
        c.name.lower().startswith("timepoint_") or c.suffix.lower() == ".jdce" for c in p.iterdir()
    )


def _is_multichannel_imagej(p: Path) -> bool:
    """A (non-OME) ImageJ hyperstack TIFF with more than one channel."""
    if p.suffix.lower() not in (".tif", ".tiff"):
        return False
    import tifffile

    try:
        with tifffile.TiffFile(p) as t:
            return bool(t.is_imagej) and int((t.imagej_metadata or {}).get("channels", 1)) > 1
    except Exception:  # noqa: BLE001 - not a readable TIFF: not ours to report
        return False


def _claims(p: Path) -> bool:
    """True for paths only napari-pcim should report on (see the module docstring)."""
    if p.is_file():
        name = p.name.lower()
        return name.endswith((".ome.tif", ".ome.tiff", ".jdce")) or _is_multichannel_imagej(p)
    return p.is_dir() and (is_ngff(p) or _is_instrument_folder(p))


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


def export_layers(exported: AnnotatedField, source: str) -> list[LayerDataTuple]:
    """Layers of an export, named and styled as when they were exported.

    Channels and labels are named by :func:`napari_pcim.layers.field_layer_data` from the
    well, field and phenotype the export recorded (else the file's name stands for the
    well); each map is ``"<its name> · B03 f0"`` with its recorded metadata, colormap
    and contrast limits.
    """
    from napari.utils.colormaps import AVAILABLE_COLORMAPS

    md = exported.metadata
    well = str(md.get("well") or Path(source).name.split(".")[0])
    field = int(md.get("field", FIRST_FIELD))
    names = list(exported.channels)
    image = np.stack([exported.channels[n] for n in names]) if names else np.zeros((0, 1, 1))
    layers = field_layer_data(image, exported.labels, names, exported.pixel_size, well, field,
                              phenotype=md.get("phenotype"), source=source)
    common = {k: md[k] for k in ("method", "model", "model_sha256", "plate") if k in md}
    target_names = (md.get("target_names") or [[]])[0]
    scale = exported.pixel_size or (1.0, 1.0)
    for i, (name, amap) in enumerate(exported.maps.items()):
        meta = {**common, **exported.map_metadata.get(name, {})}
        target = meta.pop("target", None) or (target_names[i] if i < len(target_names) else "")
        style = meta.pop("style", {})
        data, kwargs, kind = attribution_layer_data(
            amap, label=str(meta.get("label") or name), target=str(target), well=well,
            field=field, scale=scale, metadata={**meta, "export": source})
        kwargs["name"] = SEP.join((name, field_label(well, field)))
        kwargs["metadata"][KIND] = meta.get(KIND, "attribution")
        cmap = style.get("colormap")
        if not isinstance(cmap, dict) and cmap not in AVAILABLE_COLORMAPS:
            style.pop("colormap", None)  # a name this napari does not know: keep the default
        kwargs.update({k: (tuple(v) if isinstance(v, list) else v) for k, v in style.items()})
        layers.append((data, kwargs, kind))
    return layers


def _export_reader(p: Path) -> ReaderFunction:
    def reader(_path: str | Sequence[str]) -> list[LayerDataTuple]:
        try:
            return export_layers(read_annotated_field(p), str(p))
        except (OSError, ValueError) as exc:
            return _refusal(str(exc))(_path)

    return reader


def get_reader(path: str | Sequence[str]) -> ReaderFunction | None:
    """npe2 ``get_reader``: a reader for plates, OME-TIFFs and exports napari-pcim can open,
    else None."""
    p = _single_path(path)
    if p is None or not p.exists():
        return None
    p = _plate_of_index(p)
    if is_annotated_field(p):
        return _export_reader(p)
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

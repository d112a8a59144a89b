"""Yokogawa CellVoyager (CV7000/CV8000/CQ1) plates: ``MeasurementData.mlf`` + ``MeasurementDetail.mrf``.

Own parser (the standard library's ElementTree). The maintained ``cellvoyager-types``
(0.9) needs the ``.wpi`` plate file and the ``.mes`` settings file besides the MLF
and MRF and validates every element strictly (pydantic, ``extra="forbid"``), so it
refuses the partial exports users copy (images + MLF + MRF), and it adds
``xmltodict``; the few attributes needed here are read directly:

- MLF ``MeasurementRecord`` elements (``Type="IMG"``): ``Row``, ``Column``,
  ``FieldIndex``, ``ZIndex``, ``TimePoint``, ``Ch`` and the file name as text;
- MRF ``MeasurementChannel``: ``Ch`` and ``HorizontalPixelDimension`` /
  ``VerticalPixelDimension`` (µm);
- channel names from the ``.mes`` file the MRF names (``Channel`` ``Target`` or
  ``Fluorophore``) when it is there, else ``ch1``, ``ch2``, ….
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree

from napari_pcim.plate_io.model import Plate, PlateError
from napari_pcim.plate_io.planes import PlaneFile, PlaneSelection, first_missing, plate_from_planes
from napari_pcim.plate_io.plate_map import find_plate_map
from napari_pcim.plate_io.wells import well_name

MLF_NAME = "MeasurementData.mlf"
MRF_NAME = "MeasurementDetail.mrf"


def is_cellvoyager(path: Path) -> bool:
    """True if the folder ``path`` holds a CellVoyager ``MeasurementData.mlf``."""
    return (path / MLF_NAME).is_file()


def _attrs(el: ElementTree.Element) -> dict[str, str]:
    """Attributes by local name (``bts:Row`` -> ``Row``)."""
    return {k.rsplit("}", 1)[-1]: v for k, v in el.attrib.items()}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse(f: Path) -> ElementTree.Element:
    try:
        return ElementTree.parse(f).getroot()
    except (OSError, ElementTree.ParseError) as e:
        raise PlateError(f"{f}: unreadable CellVoyager metadata ({e})") from None


def open_cellvoyager(
    path: Path, pm: dict | None, channel_names: Sequence[str] | None, selection: PlaneSelection
) -> Plate:
    """The CellVoyager measurement folder ``path`` as a :class:`Plate`."""
    mlf = path / MLF_NAME
    rows = []
    for el in _parse(mlf).iter():
        if _local(el.tag) != "MeasurementRecord":
            continue
        a = _attrs(el)
        if a.get("Type", "IMG") != "IMG" or not (el.text or "").strip():
            continue  # ERR records: planes the instrument failed to take
        try:
            rows.append(
                PlaneFile(
                    well_name(int(a["Row"]) - 1, int(a["Column"])),
                    int(a.get("FieldIndex", 1)),
                    int(a["Ch"]),
                    int(a.get("ZIndex", 1)),
                    int(a.get("TimePoint", 1)),
                    path / el.text.strip(),  # type: ignore[union-attr]
                )
            )
        except (KeyError, ValueError) as e:
            raise PlateError(f"{mlf}: malformed MeasurementRecord {a} ({e})") from None
    if not rows:
        raise PlateError(f"{mlf}: no IMG measurement records")
    missing = first_missing(rows)
    if missing is not None:
        raise PlateError(f"{mlf}: lists {missing.name}, which is not in {path}")

    pixel = None
    names: dict[int | str, str] = {}
    mrf = path / MRF_NAME
    if mrf.is_file():
        root = _parse(mrf)
        for el in root.iter():
            a = _attrs(el)
            if _local(el.tag) == "MeasurementChannel" and pixel is None:
                try:
                    pixel = (float(a["VerticalPixelDimension"]), float(a["HorizontalPixelDimension"]))
                except (KeyError, ValueError):
                    pixel = None
        mes_name = _attrs(root).get("MeasurementSettingFileName") or next(
            (el.text for el in root.iter() if _local(el.tag) == "MeasurementSettingFileName"), None
        )
        if mes_name and (path / mes_name.strip()).is_file():
            for el in _parse(path / mes_name.strip()).iter():
                a = _attrs(el)
                if _local(el.tag) == "Channel" and a.get("Ch", "").isdigit():
                    name = a.get("Target") or a.get("Fluorophore")
                    if name:
                        names[int(a["Ch"])] = name
    return plate_from_planes(
        path, "tiff", rows, names, channel_names, pixel, selection,
        pm if pm is not None else find_plate_map(path),
        metadata={"layout": "CellVoyager (MeasurementData.mlf)"},
        default_name=lambda c: f"ch{c}",
    )

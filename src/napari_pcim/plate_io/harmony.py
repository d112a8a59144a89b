"""Revvity (PerkinElmer) Opera / Operetta plates exported by Harmony: ``Index.idx.xml``.

Own parser (the standard library's ElementTree), because no maintained Python
package reads Harmony exports on their own: the Harmony index is one XML file whose
``Images/Image`` entries name each plane file (``URL``) with its ``Row``, ``Col``,
``FieldID``, ``PlaneID``, ``TimepointID`` and ``ChannelID``, and whose
``Maps/Map/Entry`` elements (or the images themselves) give each channel's
``ChannelName``, ``ImageResolutionX/Y`` (metres) and emission wavelength. The
namespace changes with the Harmony version (``HarmonyV5``, ``HarmonyV6``, ``PEHH``),
so elements are matched by their local names. Both the ``Index.idx.xml`` of Harmony
4+ and the older ``Index.xml`` (Operetta, Columbus exports) are read. Without an
index, the bare ``r02c03f01p01-ch1sk1fk1fl1.tiff`` names are matched by
:mod:`.tiff_folder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree

from napari_pcim.plate_io.model import Plate, PlateError
from napari_pcim.plate_io.planes import PlaneFile, PlaneSelection, first_missing, plate_from_planes
from napari_pcim.plate_io.plate_map import find_plate_map
from napari_pcim.plate_io.wells import well_name

#: Index file names, tried in order (in the folder, then in its ``Images/`` subfolder).
INDEX_NAMES = ("Index.idx.xml", "Index.xml", "Index.ref.xml")


def find_index(path: Path) -> Path | None:
    """The Harmony index file of the plate folder ``path`` (or its ``Images/``), or None."""
    for folder in (path, path / "Images"):
        for name in INDEX_NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(el: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [c for c in el if _local(c.tag) == name]


def _text(el: ElementTree.Element, name: str) -> str | None:
    for c in el:
        if _local(c.tag) == name:
            return (c.text or "").strip()
    return None


def _metres_to_um(el: ElementTree.Element, name: str) -> float | None:
    for c in el:
        if _local(c.tag) == name and c.text:
            unit = c.get("Unit", "m")
            v = float(c.text)
            return v * 1e6 if unit == "m" else v
    return None


def read_index(index: Path) -> tuple[list[PlaneFile], dict[int | str, str], tuple | None]:
    """Plane rows, ``{channel id: name}`` and the (y, x) pixel size in µm of a Harmony index."""
    try:
        root = ElementTree.parse(index).getroot()
    except (OSError, ElementTree.ParseError) as e:
        raise PlateError(f"{index}: unreadable Harmony index ({e})") from None
    images = [im for el in root.iter() if _local(el.tag) == "Images" for im in _children(el, "Image")]
    if not images:
        raise PlateError(f"{index}: Harmony index lists no Images/Image entries")
    names: dict[int | str, str] = {}
    pixel = None
    for entry in (e for e in root.iter() if _local(e.tag) == "Entry"):
        cid, cname = entry.get("ChannelID"), _text(entry, "ChannelName")
        if cid and cname:
            names[int(cid)] = cname
        px, py = _metres_to_um(entry, "ImageResolutionX"), _metres_to_um(entry, "ImageResolutionY")
        if pixel is None and px and py:
            pixel = (py, px)
    rows = []
    for im in images:
        url = _text(im, "URL")
        try:
            row, col = int(_text(im, "Row") or ""), int(_text(im, "Col") or "")
            ch = int(_text(im, "ChannelID") or "")
            site = int(_text(im, "FieldID") or 1)
            z = int(_text(im, "PlaneID") or 1)
            t = int(_text(im, "TimepointID") or 0)
        except ValueError as e:
            raise PlateError(f"{index}: image entry {_text(im, 'id')!r} is malformed ({e})") from None
        if not url:
            continue  # an entry whose plane was not written (State != Ok)
        names.setdefault(ch, _text(im, "ChannelName") or f"ch{ch}")
        if pixel is None:
            px, py = _metres_to_um(im, "ImageResolutionX"), _metres_to_um(im, "ImageResolutionY")
            pixel = (py, px) if px and py else None
        rows.append(PlaneFile(well_name(row - 1, col), site, ch, z, t, index.parent / url))
    return rows, names, pixel


def open_harmony(
    path: Path,
    index: Path,
    pm: dict | None,
    channel_names: Sequence[str] | None,
    selection: PlaneSelection,
) -> Plate:
    """The Harmony export at ``path`` (index file ``index``) as a :class:`Plate`."""
    rows, names, pixel = read_index(index)
    missing = first_missing(rows)
    if missing is not None:
        raise PlateError(f"{index}: lists {missing.name}, which is not in {missing.parent}")
    return plate_from_planes(
        path, "tiff", rows, names, channel_names, pixel, selection,
        pm if pm is not None else find_plate_map(path),
        metadata={"layout": f"Opera/Operetta ({index.name})"},
        default_name=lambda c: f"ch{c}",
    )

"""Read a single bioio-readable file (OME-TIFF, CZI, ND2, ...) or an open image object as a plate.

Scenes become fields, grouped by well when every scene name contains a well name
(``B03``, ``Well B3``), otherwise all fields of well ``A01``; fields are 0-based in
scene order. Z stacks and time series are reduced by the user's
:class:`~napari_pcim.plate_io.planes.PlaneSelection` (default: the maximum projection
over z at the first time point); the choice is recorded as ``Plate.planes``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_pcim.plate_io.model import Backend, Plate, PlateError, check_channel_names
from napari_pcim.plate_io.planes import PlaneSelection
from napari_pcim.plate_io.plate_map import find_plate_map
from napari_pcim.plate_io.wells import well_name

# A well name inside a scene name: "B03", "Well B3", "B3_Field1" (not "C1" in "Scene C12x").
_SCENE_WELL = re.compile(r"(?:^|[^A-Za-z0-9])(?:well[\s_-]*)?([A-Pa-p])(\d{1,2})(?![0-9])", re.IGNORECASE)


TIFF_SUFFIXES = (".tif", ".tiff")


def check_tiff(path: Path) -> None:
    """Refuse a truncated or corrupt TIFF before bioio reads it.

    bioio falls back from its OME-TIFF reader to plain tifffile when the OME-XML cannot
    be read, so a truncated ``.ome.tif`` would open as a 1-channel image of whatever
    pages survived. This check reads only the TIFF structure (tifffile): every page's
    pixel data must lie inside the file, and a file named ``.ome.tif(f)`` must carry
    readable OME-XML.
    """
    import logging

    import tifffile

    size = path.stat().st_size
    quiet = logging.getLogger("tifffile")
    level, quiet.level = quiet.level, logging.CRITICAL  # its own warnings would repeat ours
    try:
        with tifffile.TiffFile(path) as tif:
            for k, page in enumerate(tif.pages):
                offsets = getattr(page, "dataoffsets", ()) or ()
                counts = getattr(page, "databytecounts", ()) or ()
                end = max((o + c for o, c in zip(offsets, counts)), default=0)
                if end > size:
                    raise PlateError(
                        f"{path}: truncated or corrupt TIFF: page {k}'s pixels end at byte {end} "
                        f"but the file has {size} bytes"
                    )
            if path.name.lower().endswith((".ome.tif", ".ome.tiff")):
                if not tif.is_ome or not tif.ome_metadata:
                    raise PlateError(
                        f"{path}: named OME-TIFF but its OME-XML metadata is missing or "
                        "unreadable (truncated or corrupt file?)"
                    )
    except tifffile.TiffFileError as e:
        raise PlateError(f"{path}: not a readable image file (TIFF: {e})") from None
    finally:
        quiet.level = level


def open_bioio(
    img: Any,
    path: Path,
    pm: dict | None,
    channel_names: Sequence[str] | None,
    selection: PlaneSelection | None = None,
) -> Plate:
    """Scenes of a bioio/aicsimageio image as fields, grouped by well when scenes name wells."""
    try:
        scenes = list(img.scenes)
    except Exception as e:  # noqa: BLE001
        raise PlateError(f"{path}: cannot list scenes ({type(e).__name__}: {e})") from None
    if not scenes:
        raise PlateError(f"{path}: image has no scenes")
    # OME readers give scene ids like "Image:0"; the OME Image names carry the well.
    names_for_wells = [str(s) for s in scenes]
    try:
        images = img.ome_metadata.images
        if len(images) == len(scenes):
            names_for_wells = [f"{im.name or ''} {s}" for im, s in zip(images, scenes)]
    except Exception:  # noqa: BLE001 - not an OME reader: scene ids only
        pass
    wells = []
    for s in names_for_wells:
        m = _SCENE_WELL.search(s)
        wells.append(well_name(m.group(1), m.group(2)) if m else None)
    if any(w is None for w in wells):  # not all scenes named by well: fields of one well
        wells = ["A01"] * len(scenes)

    # Channel counts per scene (metadata only), checked up front.
    counts = []
    for s in scenes:
        try:
            img.set_scene(s)
            counts.append(int(img.dims.C))
        except Exception as e:  # noqa: BLE001
            raise PlateError(f"{path}: cannot read scene {s!r} ({type(e).__name__}: {e})") from None
    for s, c in zip(scenes[1:], counts[1:]):
        if c != counts[0]:
            raise PlateError(
                f"{path}: scene {s!r} has {c} channel(s) but scene {scenes[0]!r} has {counts[0]}"
            )
    img.set_scene(scenes[0])
    selection = selection or PlaneSelection()
    n_z, n_t = int(img.dims.Z), int(img.dims.T)
    selection.check(path, n_z, n_t)
    if channel_names is not None:
        names = check_channel_names(path, channel_names, counts[0])
    else:
        names = [str(c) for c in (img.channel_names or [])]
        # bioio's placeholder names ("Channel:0:1") carry no meaning: C0, C1, ... instead
        if len(names) != counts[0] or all(re.fullmatch(r"Channel:\d+:\d+", n) for n in names):
            names = [f"C{i}" for i in range(counts[0])]
    pixel_size = None
    try:
        pps = img.physical_pixel_sizes
        if pps.Y and pps.X:
            pixel_size = (float(pps.Y), float(pps.X))
    except Exception:  # noqa: BLE001 - some readers lack physical sizes
        pixel_size = None

    fields: dict[str, list[Any]] = {}
    for w, s in zip(wells, scenes):
        fields.setdefault(w, []).append(s)

    def load(scene: Any) -> np.ndarray:
        """One scene as (C, Y, X): the chosen time point and z plane (or projection)."""
        img.set_scene(scene)
        if isinstance(selection.z, int):
            return np.asarray(img.get_image_data("CYX", T=selection.t, Z=selection.z))
        return selection.reduce(np.asarray(img.get_image_data("CZYX", T=selection.t)))

    backend = Backend(fields, load, lambda _s: {}, lambda s: f"{path} [scene {s}]")
    if pm is None and path.name != "<image object>":
        pm = find_plate_map(path)
    plate = Plate(path, "bioio", backend, names, pixel_size, pm)
    plate.planes = selection.record(n_z, n_t)
    return plate

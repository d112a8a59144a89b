"""Write one annotated field — channels, attribution maps, label images — to OME-TIFF or OME-Zarr.

:func:`write_annotated_field` is the single writer used by the ``explain`` CLI, the
Export widget and the npe2 writer. The image is one float32 (C, Y, X) array: the
raw channels (converted to float32, values unchanged) followed by the attribution
maps, each with its channel name (e.g. ``"GFP"``, ``"PCIM · treated"``). Labels
(ground truth, nuclei, ...) are stored beside it:

- ``.ome.tif`` / ``.ome.tiff``: OME-TIFF with two images (series): 0 = the CYX
  image with channel names and physical pixel size, 1 = the labels stacked as a
  CYX uint32 image whose channel names are the label names.
- ``.ome.zarr``: an OME-Zarr image (NGFF 0.4, zarr format 2): array ``0`` with
  ``multiscales`` axes c/y/x and a scale transform, ``omero`` channel names, and
  a ``labels`` group with one NGFF label image per label name.

``metadata`` (JSON-able) is stored as ``{"napari_pcim": metadata}``: in each
OME-TIFF image's Description, and in the OME-Zarr root attributes.
Writes are atomic (:func:`napari_pcim.atomic.atomic_file`): a temporary sibling is
written, then moved into place. An existing path is refused unless ``overwrite=True``.
A failed write (read-only folder, disk full) raises an OSError naming ``path``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from napari_pcim.atomic import atomic_file

TIFF_SUFFIXES = (".ome.tif", ".ome.tiff")
ZARR_SUFFIXES = (".ome.zarr",)


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(TIFF_SUFFIXES):
        return "tiff"
    if name.endswith(ZARR_SUFFIXES):
        return "zarr"
    raise ValueError(
        f"{path}: unsupported output name; expected one ending in "
        f"{', '.join(TIFF_SUFFIXES + ZARR_SUFFIXES)}"
    )


def _stack(channels: Mapping[str, np.ndarray], maps: Mapping[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    if not channels and not maps:
        raise ValueError("nothing to write: give at least one channel or map")
    names: list[str] = []
    planes: list[np.ndarray] = []
    shape = None
    for group, items in (("channel", channels), ("map", maps)):
        for name, arr in items.items():
            a = np.asarray(arr)
            if a.ndim != 2:
                raise ValueError(f"{group} {name!r} must be a (Y, X) image, got shape {a.shape}")
            shape = shape or a.shape
            if a.shape != shape:
                raise ValueError(f"{group} {name!r} has shape {a.shape}; expected {shape} like the others")
            if name in names:
                raise ValueError(f"duplicate channel name {name!r}")
            names.append(str(name))
            planes.append(a.astype(np.float32))
    return np.stack(planes), names


def _labels(labels: Mapping[str, np.ndarray], shape: tuple[int, int]) -> dict[str, np.ndarray]:
    out = {}
    for name, arr in labels.items():
        a = np.asarray(arr)
        if a.shape != shape:
            raise ValueError(f"label {name!r} has shape {a.shape}; expected {shape} like the image")
        if not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
            raise ValueError(f"label {name!r} must be an integer image, got dtype {a.dtype}")
        if a.size and (a.min() < 0 or a.max() > np.iinfo(np.uint32).max):
            raise ValueError(f"label {name!r} values must fit uint32 (0..4294967295)")
        out[str(name)] = a.astype(np.uint32)
    return out


def _write_tiff(tmp: Path, image: np.ndarray, names: list[str], labels: dict[str, np.ndarray],
                pixel_size: tuple[float, float] | None, metadata: dict[str, Any] | None) -> None:
    import tifffile

    def ome(channel_names: list[str], name: str) -> dict[str, Any]:
        meta: dict[str, Any] = {"axes": "CYX", "Channel": {"Name": channel_names}, "Name": name}
        if pixel_size is not None:
            meta.update(PhysicalSizeY=float(pixel_size[0]), PhysicalSizeYUnit="µm",
                        PhysicalSizeX=float(pixel_size[1]), PhysicalSizeXUnit="µm")
        if metadata:
            meta["Description"] = json.dumps({"napari_pcim": metadata})
        return meta

    with tifffile.TiffWriter(tmp, ome=True, bigtiff=image.nbytes > 2**31) as tif:
        tif.write(image, metadata=ome(names, "image"), photometric="minisblack")
        if labels:
            stack = np.stack(list(labels.values()))
            tif.write(stack, metadata=ome(list(labels), "labels"), photometric="minisblack")


def write_ome_zarr_image(tmp: Path, image: np.ndarray, names: list[str], labels: dict[str, np.ndarray],
                         pixel_size: tuple[float, float] | None, metadata: dict[str, Any] | None) -> None:
    """One NGFF 0.4 image (C, Y, X float32 + ``labels`` group) at ``tmp``; ``metadata`` goes under
    ``napari_pcim`` in its attributes. The metadata is built by :mod:`napari_pcim.plate_io.ngff`.
    Not atomic by itself: callers write to a temporary path (see :mod:`napari_pcim.atomic`)."""
    import zarr

    from napari_pcim.plate_io import ngff

    root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
    C, Y, X = image.shape
    arr = root.create_array("0", shape=image.shape, dtype="float32",
                            chunks=(1, min(Y, 1024), min(X, 1024)), chunk_key_encoding={"name": "v2", "separator": "/"})
    arr[...] = image
    channels = []
    for i, name in enumerate(names):
        lo, hi = float(np.nanmin(image[i])), float(np.nanmax(image[i]))
        channels.append(ngff.omero_channel(name, "FFFFFF", (lo, hi, lo, hi), active=True))
    attrs = ngff.image_attrs(channels, pixel_size)
    if metadata:
        attrs["napari_pcim"] = metadata
    root.attrs.update(attrs)
    if labels:
        group = root.create_group("labels")
        group.attrs.update(ngff.labels_attrs(list(labels)))
        for name, lab in labels.items():
            g = group.create_group(name)
            a = g.create_array("0", shape=lab.shape, dtype="uint32",
                               chunks=(min(Y, 1024), min(X, 1024)), chunk_key_encoding={"name": "v2", "separator": "/"})
            a[...] = lab
            g.attrs.update(ngff.label_image_attrs(pixel_size))


def write_annotated_field(
    path: str | os.PathLike,
    *,
    channels: Mapping[str, np.ndarray],
    maps: Mapping[str, np.ndarray] | None = None,
    labels: Mapping[str, np.ndarray] | None = None,
    pixel_size: tuple[float, float] | None = None,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write channels + attribution maps (+ labels) of one field; returns the path written.

    ``channels`` and ``maps``: {name: (Y, X) array}, stored in that order as one
    float32 CYX image; ``labels``: {name: (Y, X) integer array}; ``pixel_size``:
    (y, x) in µm. The format follows the suffix (``.ome.tif``/``.ome.tiff`` or
    ``.ome.zarr``).
    """
    path = Path(path)
    kind = _kind(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: output folder does not exist")
    if metadata is not None:
        json.dumps(metadata)  # fail early (TypeError) on non-JSON metadata
    image, names = _stack(channels, maps or {})
    labs = _labels(labels or {}, image.shape[1:])
    if pixel_size is not None and (len(pixel_size) != 2 or min(pixel_size) <= 0):
        raise ValueError(f"pixel_size must be (y, x) in µm, both > 0; got {pixel_size!r}")

    try:
        with atomic_file(path, overwrite=overwrite) as tmp:
            if kind == "tiff":
                _write_tiff(tmp, image, names, labs, pixel_size, metadata)
            else:
                write_ome_zarr_image(tmp, image, names, labs, pixel_size, metadata)
    except FileExistsError:
        raise
    except OSError as exc:
        raise _write_error(path, exc) from exc
    return path


def _write_error(path: Path, exc: OSError) -> OSError:
    """``exc`` restated for ``path`` (not its temp sibling), saying so when the disk is full."""
    short = "requested and" in str(exc) and "written" in str(exc)  # tifffile/numpy short write
    if exc.errno == errno.ENOSPC or short:
        free = shutil.disk_usage(path.parent).free / 1e6
        return OSError(errno.ENOSPC, f"disk full ({free:.1f} MB free there); nothing was written",
                       str(path))
    return OSError(exc.errno, exc.strerror or str(exc), str(path))

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
OME-TIFF image's Description, and in the OME-Zarr root attributes. Beside it,
``"napari_pcim_layers"`` records which planes are channels and which are maps,
the channels' and labels' own dtypes, the pixel size and each map's metadata, so
:func:`read_annotated_field` (the npe2 reader's way in) gives back what was written.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_pcim.atomic import atomic_file

TIFF_SUFFIXES = (".ome.tif", ".ome.tiff")
ZARR_SUFFIXES = (".ome.zarr",)
#: The attribute (OME-Zarr) / Description key (OME-TIFF) holding the layer record.
LAYERS_KEY = "napari_pcim_layers"


@dataclass
class AnnotatedField:
    """What :func:`write_annotated_field` wrote, as read back by :func:`read_annotated_field`."""

    channels: dict[str, np.ndarray]
    maps: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    pixel_size: tuple[float, float] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    map_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)


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
                pixel_size: tuple[float, float] | None, document: dict[str, Any]) -> None:
    import tifffile

    def ome(channel_names: list[str], name: str) -> dict[str, Any]:
        meta: dict[str, Any] = {"axes": "CYX", "Channel": {"Name": channel_names}, "Name": name}
        if pixel_size is not None:
            meta.update(PhysicalSizeY=float(pixel_size[0]), PhysicalSizeYUnit="µm",
                        PhysicalSizeX=float(pixel_size[1]), PhysicalSizeXUnit="µm")
        meta["Description"] = json.dumps(document)
        return meta

    with tifffile.TiffWriter(tmp, ome=True, bigtiff=image.nbytes > 2**31) as tif:
        tif.write(image, metadata=ome(names, "image"), photometric="minisblack")
        if labels:
            stack = np.stack(list(labels.values()))
            tif.write(stack, metadata=ome(list(labels), "labels"), photometric="minisblack")


def write_ome_zarr_image(tmp: Path, image: np.ndarray, names: list[str], labels: dict[str, np.ndarray],
                         pixel_size: tuple[float, float] | None, document: dict[str, Any]) -> None:
    """One NGFF 0.4 image (C, Y, X float32 + ``labels`` group) at ``tmp``; ``document``
    (``{"napari_pcim": metadata, ...}``) joins its attributes. The NGFF metadata is built by
    :mod:`napari_pcim.plate_io.ngff`.
    Not atomic by itself: callers write to a temporary path (see :mod:`napari_pcim.atomic`)."""
    import zarr

    from napari_pcim.plate_io import ngff

    root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
    _, Y, X = image.shape
    arr = root.create_array("0", shape=image.shape, dtype="float32",
                            chunks=(1, min(Y, 1024), min(X, 1024)), chunk_key_encoding={"name": "v2", "separator": "/"})
    arr[...] = image
    channels = []
    for i, name in enumerate(names):
        lo, hi = float(np.nanmin(image[i])), float(np.nanmax(image[i]))
        channels.append(ngff.omero_channel(name, "FFFFFF", (lo, hi, lo, hi), active=True))
    root.attrs.update({**ngff.image_attrs(channels, pixel_size), **document})
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
    map_metadata: Mapping[str, dict[str, Any]] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write channels + attribution maps (+ labels) of one field; returns the path written.

    ``channels`` and ``maps``: {name: (Y, X) array}, stored in that order as one
    float32 CYX image; ``labels``: {name: (Y, X) integer array}; ``pixel_size``:
    (y, x) in µm; ``map_metadata``: {map name: JSON-able metadata} (method, target, ...).
    The format follows the suffix (``.ome.tif``/``.ome.tiff`` or ``.ome.zarr``).
    """
    path = Path(path)
    kind = _kind(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: output folder does not exist")
    image, names = _stack(channels, maps or {})
    labs = _labels(labels or {}, image.shape[1:])
    if pixel_size is not None and (len(pixel_size) != 2 or min(pixel_size) <= 0):
        raise ValueError(f"pixel_size must be (y, x) in µm, both > 0; got {pixel_size!r}")
    record = {
        "channels": {str(k): str(np.asarray(v).dtype) for k, v in channels.items()},
        "maps": {str(k): dict((map_metadata or {}).get(k) or {}) for k in (maps or {})},
        "labels": {str(k): str(np.asarray(v).dtype) for k, v in (labels or {}).items()},
        "pixel_size": None if pixel_size is None else [float(v) for v in pixel_size],
    }
    document = {"napari_pcim": metadata or {}, LAYERS_KEY: record}
    json.dumps(document)  # fail early (TypeError) on non-JSON metadata

    try:
        with atomic_file(path, overwrite=overwrite) as tmp:
            if kind == "tiff":
                _write_tiff(tmp, image, names, labs, pixel_size, document)
            else:
                write_ome_zarr_image(tmp, image, names, labs, pixel_size, document)
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


def _document(path: Path) -> dict[str, Any] | None:
    """The stored ``{"napari_pcim": ..., LAYERS_KEY: ...}`` of an export, None for other files."""
    try:
        if _kind(path) == "tiff":
            import tifffile

            with tifffile.TiffFile(path) as tif:
                xml = tif.pages[0].description or ""
                if LAYERS_KEY not in xml:
                    return None
                images = tifffile.xml2dict(xml)["OME"]["Image"]
            first = images[0] if isinstance(images, list) else images
            doc = json.loads(first["Description"])
        else:
            attrs = path / ".zattrs"
            doc = json.loads(attrs.read_text()) if attrs.is_file() else {}
    except ValueError:  # another suffix, not JSON
        return None
    except (OSError, KeyError, TypeError, IndexError) as exc:
        raise OSError(f"{path}: unreadable napari-pcim export ({type(exc).__name__}: {exc})") from exc
    return doc if isinstance(doc, dict) and isinstance(doc.get(LAYERS_KEY), dict) else None


def is_annotated_field(path: str | os.PathLike) -> bool:
    """True when ``path`` is a file :func:`write_annotated_field` wrote (judged by its record)."""
    try:
        return _document(Path(path)) is not None
    except OSError:
        return True  # ours by name and marker, but broken: the reader reports it


def read_annotated_field(path: str | os.PathLike) -> AnnotatedField:
    """Read an export back: channels and labels in their own dtypes, maps as float32.

    Raises ValueError when ``path`` is not a napari-pcim export, OSError when it is
    one but cannot be read.
    """
    path = Path(path)
    doc = _document(path)
    if doc is None:
        raise ValueError(f"{path}: not a napari-pcim export (no {LAYERS_KEY} record)")
    record = doc[LAYERS_KEY]
    try:
        if _kind(path) == "tiff":
            import tifffile

            with tifffile.TiffFile(path) as tif:
                image = tif.series[0].asarray()
                stack = tif.series[1].asarray() if record["labels"] else None
            planes = np.asarray(image).reshape((-1, *image.shape[-2:]))
            label_planes = {} if stack is None else dict(
                zip(record["labels"], np.asarray(stack).reshape((-1, *stack.shape[-2:]))))
        else:
            import zarr

            root = zarr.open_group(str(path), mode="r")
            planes = np.asarray(root["0"][...])
            label_planes = {n: np.asarray(root[f"labels/{n}/0"][...]) for n in record["labels"]}
    except (OSError, KeyError, ValueError, IndexError) as exc:
        raise OSError(f"{path}: unreadable napari-pcim export ({type(exc).__name__}: {exc})") from exc
    n_channels = len(record["channels"])
    if planes.shape[0] != n_channels + len(record["maps"]):
        raise OSError(f"{path}: {planes.shape[0]} plane(s) but the record names "
                      f"{n_channels} channel(s) and {len(record['maps'])} map(s)")
    pixel_size = record.get("pixel_size")
    return AnnotatedField(
        channels={n: planes[i].astype(dt) for i, (n, dt) in enumerate(record["channels"].items())},
        maps={n: planes[n_channels + i].astype(np.float32) for i, n in enumerate(record["maps"])},
        labels={n: label_planes[n].astype(dt) for n, dt in record["labels"].items()},
        pixel_size=None if pixel_size is None else (float(pixel_size[0]), float(pixel_size[1])),
        metadata=dict(doc.get("napari_pcim") or {}),
        map_metadata={n: dict(m or {}) for n, m in record["maps"].items()},
    )

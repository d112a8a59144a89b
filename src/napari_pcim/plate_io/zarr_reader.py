"""Read OME-Zarr: HCS plates (NGFF 0.4 on zarr format 2, NGFF 0.5 on zarr v3) and single images.

Plate and well metadata, and the first field's array shape, are read at once as plain
JSON (zarr itself is imported on the first pixel read); pixel arrays are opened with
zarr lazily, on ``read_field``, so opening a 384-well × 9-field plate reads ~400 small
JSON files and no pixels (``napari-pcim bench io``). A well's fields are the images its NGFF well metadata
lists, in order: field ``i`` (0-based) is the ``i``-th image (path ``"0"`` first).

zarr reads a missing chunk as the array's fill value, as the zarr specification says:
writers skip chunks that hold only the fill value (zarr 3 does by default), so an empty
label image or a black tile may have no chunk files at all. In a plate napari-pcim wrote
(its root attributes carry ``napari_pcim``; our writer stores every chunk) a missing
chunk can only mean damage, so :func:`read_region` refuses it, naming the array and the
chunk (it checks only the chunks the read touches).
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_pcim.plate_io.model import Backend, Plate, PlateError, check_channel_names
from napari_pcim.plate_io.plate_map import find_plate_map, plate_map_from_rows
from napari_pcim.plate_io.wells import well_name


def zarr_attrs_file(path: Path) -> Path | None:
    """The metadata file that makes ``path`` a zarr group, or None."""
    for name in ("zarr.json", ".zattrs", ".zgroup"):
        if (path / name).is_file():
            return path / name
    return None


def is_ngff(path: Path) -> bool:
    """True if ``path`` is a zarr group whose attributes hold NGFF plate or image metadata.

    Unreadable metadata counts as NGFF when the group looks like one, so it gets reported.
    """
    if zarr_attrs_file(path) is None:
        return False
    try:
        ome = _ome(_attrs(path))
    except PlateError:
        return True
    return "plate" in ome or "multiscales" in ome


def _attrs(node: Path) -> dict[str, Any]:
    """Attributes of a local zarr group: ``.zattrs`` (format 2) or ``zarr.json`` (format 3).

    Read as plain JSON: opening each of a plate's wells through zarr costs ~100x more.
    """
    try:
        if (node / "zarr.json").is_file():
            return json.loads((node / "zarr.json").read_text()).get("attributes", {})
        if (node / ".zattrs").is_file():
            return json.loads((node / ".zattrs").read_text())
        if (node / ".zgroup").is_file():
            return {}
    except (OSError, ValueError) as e:
        raise PlateError(f"{node}: unreadable zarr metadata ({e})") from None
    raise PlateError(f"{node}: not a zarr group (no zarr.json or .zgroup)")


def _ome(attrs: dict[str, Any]) -> dict[str, Any]:
    """NGFF 0.5 nests metadata under "ome"; 0.4 keeps it at the top level."""
    return attrs.get("ome", attrs)


def _open_array(path: Path) -> Any:
    """The zarr array at ``path``, read-only; PlateError if it cannot be opened."""
    import zarr

    try:
        return zarr.open_array(str(path), mode="r")
    except Exception as e:  # noqa: BLE001
        raise PlateError(f"{path}: cannot open zarr array ({type(e).__name__}: {e})") from None


def array_shape(path: Path) -> tuple[int, ...]:
    """An array's shape from its JSON metadata (``.zarray`` or ``zarr.json``), else via zarr.

    Opening a plate needs only the first field's shape; reading it as JSON keeps zarr
    (~0.6 s to import) out of ``open_plate``, so it is imported on the first pixel read.
    """
    for name in (".zarray", "zarr.json"):
        try:
            meta = json.loads((path / name).read_text())
        except (OSError, ValueError):
            continue
        shape = meta.get("shape")
        if isinstance(shape, list) and all(isinstance(n, int) for n in shape):
            return tuple(shape)
    return tuple(_open_array(path).shape)


def _chunk_range(sel: int | slice, n: int, chunk: int) -> range:
    """Chunk indices along one axis that ``sel`` (an int or a slice) reads."""
    if isinstance(sel, int):
        return range(sel // chunk, sel // chunk + 1)
    start, stop, _ = sel.indices(n)
    return range(start // chunk, math.ceil(stop / chunk)) if stop > start else range(0)


@functools.lru_cache(maxsize=256)
def _written_by_napari_pcim(folder: Path) -> bool:
    """Whether ``folder`` or a zarr group above it carries napari-pcim's plate attributes."""
    for group in (folder, *folder.parents):
        for name in (".zattrs", "zarr.json"):
            try:
                attrs = json.loads((group / name).read_text())
            except (OSError, ValueError):
                continue
            if "napari_pcim" in attrs or "napari_pcim" in attrs.get("attributes", {}):
                return True
    return False


def read_region(arr: Any, index: tuple[int | slice, ...], where: Path) -> np.ndarray:
    """``arr[index]`` read into memory. In a plate napari-pcim wrote, PlateError naming
    ``where`` if a chunk the read needs is missing; elsewhere a missing chunk is the fill
    value (the zarr specification's meaning).

    The stored objects are chunks, or shards for sharded zarr v3 arrays; only those the
    read touches are looked up (one ``stat`` each), so reads stay fast on large arrays.
    """
    if not _written_by_napari_pcim(where.absolute()):
        return np.asarray(arr[index])
    grid = getattr(arr, "shards", None) or arr.chunks
    index = index + (slice(None),) * (len(arr.shape) - len(index))
    ranges = [_chunk_range(s, n, c) for s, n, c in zip(index, arr.shape, grid)]
    for coords in itertools.product(*ranges):
        key = arr.metadata.encode_chunk_key(coords)
        if not (where / key).is_file():
            raise PlateError(
                f"{where}: chunk {key} is missing (chunk {list(coords)} of the array's chunk grid "
                f"{list(grid)}); the plate is incomplete, zeros are not substituted"
            )
    return np.asarray(arr[index])


def open_zarr(path: Path, pm: dict | None, channel_names: Sequence[str] | None) -> Plate:
    """An OME-Zarr HCS plate (or a single OME-Zarr image) at ``path`` as a :class:`Plate`."""
    attrs = _attrs(path)
    plate = _ome(attrs).get("plate")
    if plate is None:
        if "multiscales" in _ome(attrs):  # a single OME-Zarr image: one well, one field
            return _open_zarr_image(path, pm, channel_names)
        raise PlateError(f"{path}: zarr group has no NGFF 'plate' metadata (not an HCS plate)")
    try:
        rows = [r["name"] for r in plate["rows"]]
        cols = [int(c["name"]) for c in plate["columns"]]
        well_paths = [w["path"] for w in plate["wells"]]
    except (KeyError, TypeError, ValueError) as e:
        raise PlateError(f"{path}: malformed NGFF plate metadata ({e})") from None

    fields: dict[str, list[Path]] = {}
    for wp in well_paths:
        r, c = wp.split("/")
        try:
            images = [im["path"] for im in _ome(_attrs(path / wp))["well"]["images"]]
        except (KeyError, TypeError) as e:
            raise PlateError(
                f"{path / wp}: malformed or missing NGFF well metadata ({e})"
            ) from None
        fields[well_name(r, c)] = [path / wp / im for im in images]

    meta = attrs.get("napari_pcim", {})
    if pm is None:
        pm = find_plate_map(path)
    if pm is None and meta.get("plate_map"):
        pm = plate_map_from_rows(meta["plate_map"])

    first = next((f for fl in fields.values() for f in fl), None)
    names: list[str] = []
    pixel_size = None
    if first is not None:
        names, pixel_size, n_channels, _ = _zarr_image_meta(first)
        if channel_names is not None:
            names = check_channel_names(path, channel_names, n_channels)
    backend = Backend(fields, _load_zarr_image, _load_zarr_labels, str)
    return Plate(path, "zarr", backend, names, pixel_size, pm, rows, cols, metadata=meta)


def _load_zarr_image(image: Path) -> np.ndarray:
    """The full-resolution (C, Y, X) data of an NGFF image group."""
    _, _, _, ds = _zarr_image_meta(image)
    return _squeeze_to_cyx(_open_array(image / ds), _zarr_axes(_attrs(image)), image / ds)


def _load_zarr_labels(image: Path) -> dict[str, np.ndarray]:
    """The NGFF image-labels of an image group, ``{name: (Y, X)}``."""
    if zarr_attrs_file(image / "labels") is None:
        return {}
    out = {}
    for name in _ome(_attrs(image / "labels")).get("labels", []):
        ms = _ome(_attrs(image / "labels" / name))["multiscales"][0]
        where = image / "labels" / name / ms["datasets"][0]["path"]
        arr = read_region(_open_array(where), (), where)
        out[name] = arr.reshape(arr.shape[-2:])
    return out


def _zarr_axes(attrs: dict[str, Any]) -> list[str]:
    """Axis names of an image's first multiscale (NGFF 0.3 without axes: t, c, z, y, x)."""
    ms = _ome(attrs)["multiscales"][0]
    axes = ms.get("axes") or ["t", "c", "z", "y", "x"]
    return [a["name"] if isinstance(a, dict) else a for a in axes]


def _zarr_image_meta(image: Path) -> tuple[list[str], tuple[float, float] | None, int, str]:
    """Channel names, (y, x) pixel size, channel count and full-resolution dataset of an image."""
    try:
        attrs = _attrs(image)
        ome = _ome(attrs)
        ds = ome["multiscales"][0]["datasets"][0]
        axes = _zarr_axes(attrs)
    except (KeyError, IndexError, TypeError) as e:
        raise PlateError(f"{image}: malformed or missing NGFF multiscales metadata ({e})") from None
    shape = array_shape(image / ds["path"])
    n_c = shape[axes.index("c")] if "c" in axes else 1
    names = [
        ch.get("label", f"C{i}") for i, ch in enumerate(ome.get("omero", {}).get("channels", []))
    ]
    if len(names) != n_c:
        names = [f"C{i}" for i in range(n_c)]
    pixel_size = None
    for t in ds.get("coordinateTransformations", []):
        if t.get("type") == "scale" and "y" in axes and "x" in axes:
            pixel_size = (float(t["scale"][axes.index("y")]), float(t["scale"][axes.index("x")]))
    return names, pixel_size, n_c, ds["path"]


def _squeeze_to_cyx(arr: Any, axes: list[str], where: Path) -> np.ndarray:
    """Read an NGFF array with ``axes`` as (C, Y, X): first t and middle z, channel axis kept."""
    index = []
    for a, n in zip(axes, arr.shape):
        if a == "t":
            index.append(0)
        elif a == "z":
            index.append(n // 2)
        else:
            index.append(slice(None))
    data = read_region(arr, tuple(index), where)
    kept = [a for a in axes if a not in ("t", "z")]
    if "c" not in kept:
        data, kept = data[None], ["c", *kept]
    if kept != ["c", "y", "x"]:
        raise PlateError(f"{where}: unsupported axes {axes}")
    return data


def _open_zarr_image(path: Path, pm: dict | None, channel_names: Sequence[str] | None) -> Plate:
    """A single OME-Zarr image opened as a one-field plate (well A01)."""
    names, pixel_size, n_c, _ = _zarr_image_meta(path)
    if channel_names is not None:
        names = check_channel_names(path, channel_names, n_c)
    backend = Backend({"A01": [path]}, _load_zarr_image, _load_zarr_labels, str)
    return Plate(
        path, "zarr", backend, names, pixel_size, pm if pm is not None else find_plate_map(path)
    )

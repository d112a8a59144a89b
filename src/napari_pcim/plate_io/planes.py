"""Plates stored as one 2-D image file per plane: the plane table and the z/time choice.

Every instrument reader (:mod:`.tiff_folder` patterns, :mod:`.imagexpress`,
:mod:`.harmony`, :mod:`.cellvoyager`) lists its files as :class:`PlaneFile` rows
(well, site, channel, z, t, file); :func:`plate_from_planes` turns the rows into a
:class:`~napari_pcim.plate_io.model.Plate` whose fields are read lazily, one plane
file per channel, and reduced to one (C, Y, X) field by the user's
:class:`PlaneSelection`: one z plane, the maximum projection over z, and one time
point. The selection is recorded on the plate (``Plate.planes``) so results can say
which plane they were computed on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from napari_pcim.plate_io.model import Backend, Plate, PlateError, check_channel_names
from napari_pcim.plate_io.wells import well_sort_key

#: The z choices besides a plane index: the maximum projection, the middle plane.
Z_CHOICES: tuple[str, ...] = ("max", "middle")
ZChoice = int | Literal["max", "middle"]


@dataclass(frozen=True)
class PlaneSelection:
    """Which z plane(s) and time point make a field. ``z``: a 0-based plane index, ``"max"``
    (maximum projection over z) or ``"middle"``; ``t``: a 0-based time point index."""

    z: ZChoice = "max"
    t: int = 0

    @classmethod
    def parse(cls, z: Any = None, t: Any = None, default_z: ZChoice = "max") -> PlaneSelection:
        """A selection from user values (``"2"``, ``"max"``, None = default); ValueError if bad."""
        if z is None or z == "":
            zc: ZChoice = default_z
        elif isinstance(z, str) and z.strip().lower() in Z_CHOICES:
            zc = z.strip().lower()  # type: ignore[assignment]
        else:
            try:
                zc = int(z)
            except (TypeError, ValueError):
                raise PlateError(
                    f"z plane {z!r}: expected a 0-based plane index or one of {list(Z_CHOICES)}"
                ) from None
            if zc < 0:
                raise PlateError(f"z plane {zc}: plane indices count from 0")
        try:
            tc = 0 if t is None or t == "" else int(t)
        except (TypeError, ValueError):
            raise PlateError(f"time point {t!r}: expected a 0-based index") from None
        if tc < 0:
            raise PlateError(f"time point {tc}: time points count from 0")
        return cls(zc, tc)

    def record(self, n_z: int, n_t: int) -> dict[str, Any]:
        """What ``Plate.planes`` records: the choice and the plate's z and time extents."""
        return {"z": self.z, "t": self.t, "n_z": int(n_z), "n_t": int(n_t)}

    def check(self, where: Any, n_z: int, n_t: int) -> None:
        """PlateError naming ``where`` if the plate lacks the chosen plane or time point."""
        if isinstance(self.z, int) and self.z >= n_z:
            raise PlateError(f"{where}: no z plane {self.z}; the plate has {n_z} (0-based)")
        if self.t >= n_t:
            raise PlateError(f"{where}: no time point {self.t}; the plate has {n_t} (0-based)")

    def reduce(self, stack: np.ndarray) -> np.ndarray:
        """``(Z, Y, X)`` or ``(C, Z, Y, X)`` -> the chosen plane or the projection over Z."""
        axis = stack.ndim - 3
        if self.z == "max":
            return stack.max(axis=axis)
        k = stack.shape[axis] // 2 if self.z == "middle" else int(self.z)
        return np.take(stack, k, axis=axis)


class PlaneFile(NamedTuple):
    """One 2-D plane on disk: well ("B03"), site (instrument number), channel (number or
    name), 0-based z and t indices (or instrument numbers: only their order matters)."""

    well: str
    site: int
    channel: int | str
    z: int
    t: int
    path: Path


def first_missing(rows: Sequence[PlaneFile]) -> Path | None:
    """The first listed plane file that is not on disk, or None (one listing per folder)."""
    import os

    present: dict[Path, set[str]] = {}
    for r in rows:
        folder = r.path.parent
        if folder not in present:
            try:
                with os.scandir(folder) as it:
                    present[folder] = {e.name for e in it}
            except OSError:
                present[folder] = set()
        if r.path.name not in present[folder]:
            return r.path
    return None


def _order(v: int | str) -> tuple[int, int | str]:
    return (0, v) if isinstance(v, int) else (1, str(v))


def plate_from_planes(
    path: Path,
    kind: str,
    rows: Sequence[PlaneFile],
    names: dict[int | str, str] | None,
    channel_names: Sequence[str] | None,
    pixel_size: tuple[float, float] | None,
    selection: PlaneSelection,
    pm: dict | None,
    *,
    metadata: dict[str, Any] | None = None,
    load_labels: Callable[[Any], dict[str, np.ndarray]] | None = None,
    read_plane: Callable[[Path], np.ndarray] | None = None,
    default_name: Callable[[int | str], str] = lambda c: f"w{c}",
) -> Plate:
    """A :class:`Plate` from plane rows; every field must hold the same channels, z and t.

    ``names`` maps channel keys to names from the instrument metadata; missing ones
    get ``default_name(key)``. ``read_plane(file)`` reads one 2-D plane (tifffile).
    """
    table: dict[tuple[str, int], dict[tuple[int | str, int, int], Path]] = {}
    for r in rows:
        slot = table.setdefault((r.well, r.site), {})
        key = (r.channel, r.z, r.t)
        if key in slot:
            raise PlateError(
                f"{path}: two files for well {r.well} site {r.site} channel {r.channel} "
                f"plane {r.z} time {r.t}: {slot[key].name} and {r.path.name}"
            )
        slot[key] = r.path
    if not table:
        raise PlateError(f"{path}: no image planes found")
    keys = sorted(table, key=lambda k: (well_sort_key(k[0]), k[1]))
    ref_key = keys[0]
    ref_ch = sorted({c for c, _, _ in table[ref_key]}, key=_order)
    zs = sorted({z for _, z, _ in table[ref_key]})
    ts = sorted({t for _, _, t in table[ref_key]})
    for k in keys:
        chans = sorted({c for c, _, _ in table[k]}, key=_order)
        if chans != ref_ch:
            raise PlateError(
                f"{path}: field {k[0]} s{k[1]} has channel(s) {chans} ({len(chans)}) but field "
                f"{ref_key[0]} s{ref_key[1]} has {ref_ch} ({len(ref_ch)})"
            )
    selection.check(path, len(zs), len(ts))
    t_key = ts[selection.t]
    z_keys = zs if not isinstance(selection.z, int) else [zs[selection.z]]
    if selection.z == "middle":
        z_keys = [zs[len(zs) // 2]]

    fields: dict[str, list[tuple[str, int, list[list[Path]]]]] = {}
    for well, site in keys:
        slot = table[(well, site)]
        files = []
        for c in ref_ch:
            planes = [slot.get((c, z, t_key)) for z in z_keys]
            if any(p is None for p in planes):
                gone = [z for z, p in zip(z_keys, planes) if p is None]
                raise PlateError(
                    f"{path}: well {well} site {site} channel {c} lacks plane(s) {gone} "
                    f"at time point {selection.t}"
                )
            files.append(planes)
        fields.setdefault(well, []).append((well, site, files))

    if channel_names is not None:
        out_names = check_channel_names(path, channel_names, len(ref_ch))
    else:
        known = names or {}
        out_names = [known.get(c) or (c if isinstance(c, str) else default_name(c)) for c in ref_ch]
        if len(set(out_names)) != len(out_names):  # two channels share a dye name
            out_names = [f"{n} ({default_name(c)})" for n, c in zip(out_names, ref_ch)]
    reader = read_plane or _read_tiff_plane
    reduce = PlaneSelection("max", selection.t) if selection.z == "max" else None

    def load(h: tuple[str, int, list[list[Path]]]) -> np.ndarray:
        """Read one field's planes, (C, Z, Y, X) -> (C, Y, X) by the z choice."""
        chans = []
        for planes in h[2]:
            stack = [reader(f) for f in planes]
            shapes = {a.shape for a in stack}
            if len(shapes) > 1 or any(a.ndim != 2 for a in stack):
                raise PlateError(
                    f"{planes[0]}: planes of {h[0]} s{h[1]} differ in shape or are not 2-D: "
                    f"{sorted(shapes)}"
                )
            chans.append(reduce.reduce(np.stack(stack)) if reduce else stack[0])
        if len({c.shape for c in chans}) > 1:
            raise PlateError(
                f"{h[2][0][0].parent}: channel files of {h[0]} s{h[1]} differ in shape: "
                f"{sorted({c.shape for c in chans})}"
            )
        return np.stack(chans)

    backend = Backend(fields, load, load_labels or (lambda _h: {}), lambda h: str(h[2][0][0]))
    plate = Plate(path, kind, backend, out_names, pixel_size, pm, metadata=metadata)
    plate.planes = selection.record(len(zs), len(ts))
    return plate


def _read_tiff_plane(f: Path) -> np.ndarray:
    """One 2-D plane of a TIFF file (tifffile); PlateError naming the file if unreadable."""
    import tifffile

    try:
        a = tifffile.imread(f)
    except Exception as e:  # noqa: BLE001
        raise PlateError(f"{f}: unreadable TIFF ({type(e).__name__}: {e})") from None
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise PlateError(f"{f}: expected one 2-D plane per file, got shape {a.shape}")
    return a

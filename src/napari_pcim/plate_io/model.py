"""The open-plate model: :class:`Plate`, :class:`PlateError` and the reader backend protocol.

Readers (:mod:`.zarr_reader`, :mod:`.tiff_folder`, :mod:`.bioio_files`) list a plate's
fields into a :class:`Backend`; :class:`Plate` gives them one interface with lazy
pixel reads and one error type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_pcim.plate_io.wells import (
    PLATE_FORMATS,
    guess_format,
    row_index,
    row_letters,
    split_well,
    well_name,
    well_sort_key,
)
from napari_pcim.vocabulary import DEMO_CLASSES, field_label


class PlateError(ValueError):
    """A plate cannot be opened or read; the message names the file and the problem."""


def check_channel_names(path: Path, names: Sequence[str], n: int) -> list[str]:
    """``names`` as strings if there are ``n`` of them; PlateError naming ``path`` if not."""
    names = [str(x) for x in names]
    if len(names) != n:
        raise PlateError(
            f"{path}: {len(names)} channel name(s) given ({', '.join(names)}) "
            f"but fields have {n} channel(s)"
        )
    return names


@dataclass
class Backend:
    """How one plate kind lists and loads its fields (one instance per open plate)."""

    fields: dict[str, list[Any]]  # well -> per-field handle (backend specific)
    load: Callable[[Any], np.ndarray]  # handle -> (C, Y, X)
    load_labels: Callable[[Any], dict[str, np.ndarray]]
    describe: Callable[[Any], str]  # handle -> file/path shown in errors


class Plate:
    """An open plate: well/field layout, channel names, pixel size, conditions; lazy pixels.

    Attributes: ``path``, ``rows`` (row letters of the plate format), ``columns``
    (1-based ints), ``wells`` (present wells, sorted), ``channel_names``,
    ``pixel_size`` ((y, x) µm or None), ``conditions`` {well: str}, ``phenotypes``
    {well: "control"|"treated"} where known, ``plate_format`` (96/384/1536/None), ``kind``
    ("zarr", "tiff" or "bioio"), ``metadata`` (napari-pcim's own plate attributes, e.g.
    the synthetic ``phenotype``; empty for other plates), ``edge_wells``, ``planes``
    (the z/time choice that made the fields: ``{"z": "max"|"middle"|int, "t": int,
    "n_z": int, "n_t": int}``), ``channel_map`` ({plate channel: name} applied by
    :meth:`with_channel_map`, empty if none).
    """

    def __init__(
        self,
        path: Path,
        kind: str,
        backend: Backend,
        channel_names: list[str],
        pixel_size: tuple[float, float] | None,
        plate_map: dict[str, dict[str, str]] | None,
        rows: list[str] | None = None,
        columns: list[int] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.kind = kind
        self._backend = backend
        self.wells: list[str] = sorted(backend.fields, key=well_sort_key)
        self.channel_names = list(channel_names)
        self.pixel_size = pixel_size
        self.plate_format = guess_format(self.wells)
        if rows is None or columns is None:
            nr, nc = PLATE_FORMATS.get(self.plate_format or 0, (0, 0))
            if not nr:  # unknown format: the span of the present wells
                nr = max(row_index(split_well(w)[0]) for w in self.wells) + 1 if self.wells else 0
                nc = max(split_well(w)[1] for w in self.wells) if self.wells else 0
            rows, columns = [row_letters(i) for i in range(nr)], list(range(1, nc + 1))
        self.rows, self.columns = list(rows), list(columns)
        pm = plate_map or {}
        self.conditions: dict[str, str] = {
            w: v["condition"] for w, v in pm.items() if v.get("condition")
        }
        self.phenotypes: dict[str, str] = {
            w: v["phenotype"] for w, v in pm.items() if v.get("phenotype") in DEMO_CLASSES
        }
        self.edge_wells: set[str] = {
            w for w, v in pm.items() if str(v.get("edge", "")).lower() in ("1", "true", "yes")
        }
        self._first_shape: tuple[tuple[str, int], int] | None = None
        self.planes: dict[str, Any] = {"z": None, "t": 0, "n_z": 1, "n_t": 1}
        self.channel_map: dict[str, str] = {}

    def read_record(self) -> dict[str, Any]:
        """How the fields were read, for results to store: the z/time choice and channel map.

        ``{"z": "max", "t": 0, "n_z": 3, "n_t": 1, "channel_map": {"w1": "DAPI"}}``.
        """
        return {**self.planes, "channel_map": dict(self.channel_map)}

    def with_channel_map(self, mapping: dict[str, str]) -> Plate:
        """A view of this plate whose channels carry new names: ``{plate channel: new name}``.

        Channels the mapping does not name keep their names. The pixels are shared (the
        view reads the same files). PlateError naming the channel when the mapping names a
        channel this plate lacks, or when two channels would end up with the same name.
        """
        lower = {c.lower(): c for c in self.channel_names}
        resolved: dict[str, str] = {}
        for src, dst in mapping.items():
            key = src if src in self.channel_names else lower.get(str(src).lower())
            if key is None:
                raise PlateError(
                    f"{self.path}: the channel map names plate channel {src!r}, which this "
                    f"plate lacks; plate channels: {self.channel_names}"
                )
            resolved[key] = str(dst)
        names = [resolved.get(c, c) for c in self.channel_names]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise PlateError(
                f"{self.path}: the channel map gives two channels the name(s) {dup}; "
                f"plate channels {self.channel_names} would become {names}"
            )
        import copy

        view = copy.copy(self)
        view.channel_names = names
        view.channel_map = {**self.channel_map, **resolved}
        return view

    def __repr__(self) -> str:
        return (
            f"Plate({str(self.path)!r}, kind={self.kind!r}, wells={len(self.wells)}, "
            f"channels={self.channel_names}, format={self.plate_format})"
        )

    def n_fields(self, well: str) -> int:
        """Number of fields (sites) imaged in ``well``."""
        return len(self._handles(well))

    def _handles(self, well: str) -> list[Any]:
        try:
            key = well_name(*split_well(well))
        except ValueError as e:
            raise PlateError(f"{self.path}: {e}") from None
        if key not in self._backend.fields:
            shown = ", ".join(self.wells[:8]) + (" ..." if len(self.wells) > 8 else "")
            raise PlateError(
                f"{self.path}: no well {well!r} in this plate (wells: {shown or 'none'})"
            )
        return self._backend.fields[key]

    def _handle(self, well: str, field: int) -> Any:
        handles = self._handles(well)
        if not 0 <= int(field) < len(handles):
            raise PlateError(
                f"{self.path}: well {well} has {len(handles)} field(s) (0-based), no field {field}"
            )
        return handles[int(field)]

    def read_field(self, well: str, field: int = 0) -> np.ndarray:
        """The raw (C, Y, X) field of ``well``/``field`` (0-based), read from disk now."""
        h = self._handle(well, field)
        try:
            data = np.asarray(self._backend.load(h))
        except PlateError:
            raise
        except Exception as e:
            raise PlateError(
                f"{self._backend.describe(h)}: cannot read field ({type(e).__name__}: {e})"
            ) from e
        if data.ndim == 2:
            data = data[None]
        if data.ndim != 3:
            raise PlateError(
                f"{self._backend.describe(h)}: expected a (C, Y, X) field, got shape {data.shape}"
            )
        # All fields must have the same channel count; name both fields if not.
        if self._first_shape is None:
            self._first_shape = ((well_name(*split_well(well)), int(field)), data.shape[0])
        (w0, f0), c0 = self._first_shape
        if data.shape[0] != c0:
            raise PlateError(
                f"{self.path}: field {field_label(well_name(*split_well(well)), field)} has "
                f"{data.shape[0]} channel(s) but field {field_label(w0, f0)} has {c0}"
            )
        if self.channel_names and data.shape[0] != len(self.channel_names):
            raise PlateError(
                f"{self._backend.describe(h)}: {data.shape[0]} channel(s) but the plate names "
                f"{len(self.channel_names)} ({', '.join(self.channel_names)})"
            )
        return data

    def read_labels(self, well: str, field: int = 0) -> dict[str, np.ndarray]:
        """Label images stored with the field, ``{name: (Y, X) array}`` (empty if none)."""
        h = self._handle(well, field)
        try:
            return {k: np.asarray(v) for k, v in self._backend.load_labels(h).items()}
        except PlateError:
            raise
        except Exception as e:
            raise PlateError(
                f"{self._backend.describe(h)}: cannot read labels ({type(e).__name__}: {e})"
            ) from e


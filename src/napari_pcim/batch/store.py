"""The result store on disk: create or check it, write one field, write the CSV, read it back.

Layout of ``RESULT.zarr`` (laid out like the plate, NGFF 0.4, zarr format 2)::

    RESULT.zarr/.zattrs          plate metadata + {"napari_pcim": {fingerprint, model, method, ...}}
    RESULT.zarr/B/3/0/0          attribution maps (T, Y, X) float32, one channel per target class
    RESULT.zarr/B/3/0/labels/gt  the plate's ground-truth labels for that field, when it has them
    RESULT.zarr/B/3/0/channel_maps  per-channel maps (T, C, Y, X) float32 (``per_channel`` jobs);
                                 the channel names in its ``channels`` attribute
    RESULT.zarr/failed/B03_f0.json  a field that failed (run with ``skip_failed``): its reason
    RESULT.csv                   one row per (well, field) done or failed: status, well, field,
                                 condition, prediction, ground-truth-free statistics, outlier
                                 flag and reason, metrics (or the reason it failed)

Every write goes through :mod:`napari_pcim.atomic` and its JSON is strict (no bare NaN):
a field folder appears whole or not at all, readers skip the atomic temp names, and
:func:`open_store` removes the temp leftovers of a killed run. The root metadata records
the plate's absolute path and content hash, so a store never mixes two plates. Fields
are 0-based (folder ``0`` is the well's first field, as in the plate).
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_pcim import __version__, atomic
from napari_pcim.batch.job import BatchJob, plate_identity
from napari_pcim.plate_stats import flag_outliers
from napari_pcim.vocabulary import field_label, field_stem

FORMAT_KEY = "napari_pcim"


FAILED_DIR = "failed"


class StoreMismatchError(ValueError):
    """An existing result store was made with another plate, model, method or options."""


def _well_path(well: str) -> tuple[str, str]:
    row = "".join(ch for ch in well if ch.isalpha())
    col = well[len(row):].lstrip("0") or "0"
    return row, col


def field_dir(store: Path, well: str, field_index: int) -> Path:
    """The folder of one field in a store: ``B03`` field 0 → ``store/B/3/0``."""
    row, col = _well_path(well)
    return store / row / col / str(field_index)


def is_done(store: Path, well: str, field_index: int) -> bool:
    """True when the field's folder is complete (renamed into place with its attributes)."""
    return (field_dir(store, well, field_index) / ".zattrs").is_file()


def _field_attr_files(store: Path) -> Iterator[Path]:
    """The ``.zattrs`` of every complete field folder (``row/col/field``), skipping temp names."""
    for attrs in sorted(store.glob("*/*/*/.zattrs")):
        parts = attrs.relative_to(store).parts[:3]
        if parts[0] != FAILED_DIR and not any(atomic.is_temp_name(p) or p.startswith(".") for p in parts):
            yield attrs


def remove_stale_temps(store: Path) -> int:
    """Delete what a killed run left: temp folders in the store's row, column and field
    folders, and temp copies of the store's CSV beside it. Returns the count."""
    n = 0
    if store.is_dir():
        n += atomic.remove_stale_temps(store) + atomic.remove_stale_temps(store / FAILED_DIR)
        for row in store.iterdir():
            if row.is_dir() and not row.name.startswith("."):
                n += atomic.remove_stale_temps(row)
                n += sum(atomic.remove_stale_temps(col) for col in row.iterdir() if col.is_dir())
    for name in (store.name, store.with_suffix(".csv").name):
        n += atomic.remove_stale_temps(store.parent, of=name)
    return n


def _failed_file(store: Path, well: str, field_index: int) -> Path:
    return store / FAILED_DIR / f"{field_stem(well, field_index)}.json"


def write_failed(store: Path, well: str, field_index: int, reason: str) -> None:
    """Record that a field failed, with its reason (replaced when it fails again)."""
    rec = {"name": field_label(well, field_index), "well": well, "field": field_index,
           "status": "failed", "reason": reason}
    atomic.write_json(_failed_file(store, well, field_index), rec)


def clear_failed(store: Path, well: str, field_index: int) -> None:
    """Forget a field's earlier failure (it is done now)."""
    _failed_file(store, well, field_index).unlink(missing_ok=True)


def read_failed(store: str | os.PathLike) -> list[dict[str, Any]]:
    """The failed-field records of a store (fields done since are left out), in plate order."""
    store = Path(store)
    out = []
    for path in sorted((store / FAILED_DIR).glob("*.json")):
        if atomic.is_temp_name(path.name):
            continue
        rec = json.loads(path.read_text())
        if not is_done(store, rec["well"], int(rec["field"])):
            out.append(rec)
    out.sort(key=_record_order)
    return out


def open_store(store: Path, job: BatchJob, plate: Any, model_sha256: str) -> dict[str, Any]:
    """Create ``store`` or check that an existing one was made by the same job.

    Raises :class:`StoreMismatchError` naming what differs (the plate included: its
    absolute path and content hash), and ``FileExistsError`` when ``store`` is a file.
    Removes the temp leftovers of an earlier, killed run.
    """
    if store.exists() and not store.is_dir():
        raise FileExistsError(f"{store}: is a file, not a result store folder; choose another --out")
    identity = plate_identity(plate)
    fingerprint = job.fingerprint(model_sha256, identity)
    attrs_file = store / ".zattrs"
    if attrs_file.exists():
        try:
            attrs = json.loads(attrs_file.read_text()).get(FORMAT_KEY)
        except ValueError as exc:
            raise StoreMismatchError(f"{attrs_file}: unreadable ({exc}); choose another --out") from None
        if attrs is None:
            raise StoreMismatchError(f"{store}: exists and is not a napari-pcim result store; choose another --out")
        if attrs["fingerprint"] != fingerprint:
            # per_channel and reading are recorded only when set (older stores lack them)
            unset = {"per_channel": False, "reading": {}}
            ours = {**unset, **job.identity(model_sha256, identity)}
            theirs = {**unset, **attrs}
            diffs = [f"{k}: store has {theirs.get(k)!r}, this run {v!r}"
                     for k, v in ours.items() if theirs.get(k) != v]
            raise StoreMismatchError(
                f"{store}: made with a different plate, model, method or options, refusing to mix "
                f"results ({'; '.join(diffs) or 'fingerprint differs'}). Use another --out, or delete the store."
            )
        remove_stale_temps(store)
        return attrs
    if store.exists() and any(not (atomic.is_temp_name(p.name) or p.name == ".zgroup") for p in store.iterdir()):
        raise StoreMismatchError(f"{store}: exists and is not a napari-pcim result store; choose another --out")
    store.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(store)
    meta = {
        "fingerprint": fingerprint,
        "model": str(job.model),
        **job.identity(model_sha256, identity),
        "napari_pcim_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    rows = list(plate.rows)
    cols = [str(c) for c in plate.columns]
    wells = [{"path": "/".join(_well_path(w)), "rowIndex": rows.index(_well_path(w)[0]),
              "columnIndex": cols.index(_well_path(w)[1])} for w in plate.wells]
    ngff_plate = {"version": "0.4", "name": f"napari-pcim {job.method}",
                  "rows": [{"name": r} for r in rows], "columns": [{"name": c} for c in cols],
                  "wells": wells}
    atomic.write_json(store / ".zgroup", {"zarr_format": 2})
    atomic.write_json(attrs_file, {"plate": ngff_plate, FORMAT_KEY: meta})  # last: marks the store
    return meta


def write_field_group(
    final: Path,
    maps: np.ndarray,
    map_names: list[str],
    labels: dict[str, np.ndarray],
    pixel_size: Sequence[float] | None,
    record: dict[str, Any],
    channel_maps: tuple[np.ndarray, list[str]] | None = None,
) -> None:
    """Write one field (maps + labels + record under ``napari_pcim``) atomically to ``final``.

    ``channel_maps``: (maps (T, C, Y, X), channel names), stored as ``channel_maps``.

    A field written twice (e.g. a retried dask task) keeps the first copy. The
    attributes are strict JSON: a non-finite value in ``record`` raises ``ValueError``.
    """
    from napari_pcim.export import write_ome_zarr_image

    if final.exists():
        return
    try:
        with atomic.atomic_directory(final) as tmp:
            write_ome_zarr_image(tmp, maps.astype(np.float32), map_names, labels,
                                 tuple(pixel_size) if pixel_size else None, {})
            attrs = json.loads((tmp / ".zattrs").read_text())
            atomic.write_json(tmp / ".zattrs", {**attrs, FORMAT_KEY: record})
            if channel_maps is not None:
                _write_channel_maps(tmp, *channel_maps)
    except FileExistsError:  # another task finished the same field meanwhile
        if not (final / ".zattrs").is_file():
            raise


def _write_channel_maps(group_dir: Path, maps: np.ndarray, channels: list[str]) -> None:
    """The per-channel maps (T, C, Y, X) as the field group's ``channel_maps`` array."""
    import zarr

    root = zarr.open_group(str(group_dir), mode="a", zarr_format=2)
    _, _, Y, X = maps.shape
    arr = root.create_array("channel_maps", shape=maps.shape, dtype="float32",
                            chunks=(1, 1, min(Y, 1024), min(X, 1024)),
                            chunk_key_encoding={"name": "v2", "separator": "/"})
    arr[...] = maps.astype(np.float32)
    arr.attrs["channels"] = list(channels)


def read_channel_maps(store: str | os.PathLike, well: str, field_index: int
                      ) -> tuple[np.ndarray, list[str]]:
    """The per-channel maps (T, C, Y, X) float32 of a done field and the channel names.

    Raises ``KeyError`` naming the field when the store lacks it or was run without
    per-channel attribution.
    """
    import zarr

    where = field_dir(Path(store), well, field_index)
    if not is_done(Path(store), well, field_index) or not (where / "channel_maps").is_dir():
        raise KeyError(f"{store}: no per-channel maps for {field_label(well, field_index)} "
                       "(run the plate with per-channel attribution)")
    arr = zarr.open_array(str(where / "channel_maps"), mode="r")
    return np.asarray(arr[:], dtype=np.float32), list(arr.attrs["channels"])


def _record_order(rec: dict[str, Any]) -> tuple[int, str, int, int]:
    """Sort key of a record: row (A … Z, AA …), column number, field."""
    row, col = _well_path(rec["well"])
    return len(row), row, int(col) if col.isdigit() else 0, int(rec["field"])


def read_records(store: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of the complete fields of a result store, in (row, column, field) order."""
    out = []
    for attrs in _field_attr_files(Path(store)):
        rec = json.loads(attrs.read_text()).get(FORMAT_KEY)
        if rec:
            out.append(rec)
    out.sort(key=_record_order)
    return out


def write_csv(store: Path, csv_path: Path) -> int:
    """(Re)write the per-field table from the store's records; atomic.

    One row per (well, field): the complete fields (status ``done``) and the failed ones
    (status ``failed`` and their reason), whatever earlier runs left behind. Done fields
    get ``outlier`` and ``outlier_reason`` from :func:`napari_pcim.plate_stats.flag_outliers`,
    computed over all done fields.
    """
    done = read_records(store)
    flagged = {(w, f): reason for w, f, reason in flag_outliers(done)}
    records = [{"status": "done", **r, "outlier": (r["well"], r["field"]) in flagged,
                "outlier_reason": flagged.get((r["well"], r["field"]), "")} for r in done]
    records += read_failed(store)
    records.sort(key=_record_order)
    columns: list[str] = []
    for rec in records:
        columns += [k for k in rec if k not in columns and k not in ("name", "targets")]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for rec in records:
                writer.writerow({k: ("" if rec.get(k) is None else rec.get(k)) for k in columns})

    atomic.write_with(csv_path, write)
    return len(records)


def read_store_meta(store: str | os.PathLike) -> dict[str, Any]:
    """The root ``napari_pcim`` attributes of a result store (model, method, plate, options).

    Raises ``ValueError`` naming the path when it is not a napari-pcim result store.
    """
    attrs_file = Path(store) / ".zattrs"
    try:
        meta = json.loads(attrs_file.read_text()).get(FORMAT_KEY)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{store}: not a napari-pcim result store (cannot read {attrs_file.name}: {exc})") from exc
    if not isinstance(meta, dict) or "method" not in meta:
        raise ValueError(f"{store}: not a napari-pcim result store (no '{FORMAT_KEY}' entry in .zattrs)")
    return meta


def read_field_maps(
    store: str | os.PathLike, well: str, field_index: int
) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """One done field of a result store: maps (T, Y, X) float32, their names, its record.

    Raises ``KeyError`` naming the well and (0-based) field when the store lacks that field.
    """
    import zarr

    if not is_done(Path(store), well, field_index):
        raise KeyError(f"{store}: no result for {field_label(well, field_index)}")
    group = zarr.open_group(str(field_dir(Path(store), well, field_index)), mode="r")
    maps = np.asarray(group["0"][:], dtype=np.float32)
    names = [c["label"] for c in group.attrs["omero"]["channels"]]
    return maps, names, dict(group.attrs[FORMAT_KEY])


@dataclass
class ResultStore:
    """An open whole-plate result store: its path, root metadata, the records of its done
    fields and those of its failed fields (``status``, ``reason``)."""

    path: Path
    meta: dict[str, Any]  # root .zattrs["napari_pcim"]: model, method, target, options, plate
    records: list[dict[str, Any]]
    failed: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def open(cls, path: str | os.PathLike) -> ResultStore:
        """Read a store's metadata and records; ``ValueError`` names a path that is no store."""
        return cls(Path(path), read_store_meta(path), read_records(path), read_failed(path))

    @property
    def classes(self) -> list[str]:
        """Class names, in the classifier's order, from the records' ``p_<class>`` keys."""
        for rec in self.records:
            return [k[2:] for k in rec if k.startswith("p_")]
        return []

    def record(self, well: str, field: int) -> dict[str, Any] | None:
        """The record of one (0-based) field, or None when it is not done."""
        return next((r for r in self.records if r["well"] == well and r["field"] == field), None)

    def outliers(self) -> dict[str, list[str]]:
        """Flagged wells (:func:`~napari_pcim.plate_stats.flag_outliers` over the done fields):
        ``{well: ["B03 f0: reason", ...]}``."""
        out: dict[str, list[str]] = {}
        for well, f, reason in flag_outliers(self.records):
            out.setdefault(well, []).append(f"{field_label(well, f)}: {reason}")
        return out

    def well_statistic(self, name: str) -> dict[str, float]:
        """Per-well mean over fields of a numeric record value (e.g. ``border_share``);
        wells whose fields lack it are left out."""
        values: dict[str, list[float]] = {}
        for rec in self.records:
            value = rec.get(name)
            if isinstance(value, (int, float)) and np.isfinite(value):
                values.setdefault(rec["well"], []).append(float(value))
        return {w: float(np.mean(v)) for w, v in values.items()}

    def per_well(self) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Per-well class probabilities and relevance mass inside GT, averaged over fields."""
        classes = self.classes
        probs: dict[str, list[np.ndarray]] = {}
        mass: dict[str, list[float]] = {}
        for rec in self.records:
            probs.setdefault(rec["well"], []).append(
                np.array([float(rec[f"p_{c}"]) for c in classes])
            )
            value = rec.get("relevance_mass")
            if value is not None and np.isfinite(value):
                mass.setdefault(rec["well"], []).append(float(value))
        return (
            {w: np.mean(p, axis=0) for w, p in probs.items()},
            {w: float(np.mean(v)) for w, v in mass.items()},
        )

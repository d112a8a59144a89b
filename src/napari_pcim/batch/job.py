"""What a whole-plate run does and what it reports: :class:`BatchJob`, :class:`BatchReport`.

Also the two pure helpers every runner shares: :func:`plan_fields` (which (well, field)
pairs to process) and :func:`field_seed` (a per-field seed independent of run order).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_pcim.vocabulary import field_label


@dataclass
class BatchJob:
    """What to explain: everything that defines the result store's contents.

    ``per_channel``: also compute per-channel attribution (``explain(..., per_channel=True)``):
    the records get one ``importance_<channel>`` column per channel and the field groups
    hold the channel maps. ``reading``: how the plate is read, as
    :func:`~napari_pcim.plate_io.open_plate` keywords (``z`` plane or projection, ``t``
    time point, ``channel_map``, ``pattern``; see :func:`reading_of`); it is recorded in
    the store and fingerprinted, so a store of one plane is never mixed with another's.
    """

    plate: str
    model: str
    method: str = "pcim"
    target: str = "predicted"
    seed: int = 0
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)
    wells: list[str] | None = None
    fields: list[int] | None = None
    per_channel: bool = False
    reading: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self, model_sha256: str, plate_identity: dict[str, str]) -> str:
        """Hash of what determines the maps: model, method, target, seed, options and plate
        (its absolute path and content hash, see :func:`plate_identity`); not the device,
        wells or fields chosen."""
        return hashlib.sha256(json.dumps(self.identity(model_sha256, plate_identity), sort_keys=True,
                                         default=str).encode()).hexdigest()

    def identity(self, model_sha256: str, plate_identity: dict[str, str]) -> dict[str, Any]:
        """The fingerprinted values, by the names the store's metadata uses."""
        return {"model_sha256": model_sha256, "method": self.method, "target": self.target,
                "seed": self.seed, "options": self.options, **plate_identity,
                # only when set, so stores made without it keep their fingerprint
                **({"per_channel": True} if self.per_channel else {}),
                **({"reading": self.reading} if self.reading else {})}


def reading_of(plate: Any, pattern: str | None = None) -> dict[str, Any]:
    """The :func:`~napari_pcim.plate_io.open_plate` keywords that reopen ``plate`` as it is
    read now: its z choice and time point when it has several, its channel map when it
    has one, and the file-name ``pattern`` when one was given. Empty for a plain plate."""
    planes = dict(getattr(plate, "planes", None) or {})
    out: dict[str, Any] = {}
    if planes.get("n_z", 1) > 1 and planes.get("z") is not None:
        out["z"] = planes["z"]
    if planes.get("n_t", 1) > 1:
        out["t"] = int(planes.get("t") or 0)
    if getattr(plate, "channel_map", None):
        out["channel_map"] = dict(plate.channel_map)
    if pattern:
        out["pattern"] = pattern
    return out


def plate_identity(plate: Any) -> dict[str, str]:
    """``{"plate": absolute path, "plate_sha256": hash of the plate's metadata}``.

    The hash covers the kind, wells, fields per well, channel names, conditions,
    phenotypes and pixel size: cheap (no pixels read), and different for two plates
    that differ in layout or content description.
    """
    meta = {
        "kind": getattr(plate, "kind", ""),
        "wells": {w: plate.n_fields(w) for w in plate.wells},
        "channels": list(plate.channel_names),
        "conditions": dict(getattr(plate, "conditions", {}) or {}),
        "phenotypes": dict(getattr(plate, "phenotypes", {}) or {}),
        "pixel_size": list(plate.pixel_size) if getattr(plate, "pixel_size", None) else None,
    }
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode()).hexdigest()
    return {"plate": str(Path(plate.path).resolve()), "plate_sha256": digest}


@dataclass
class BatchReport:
    """What a run did: fields done now, skipped (already done), failed (with their reason,
    when run with ``skip_failed``), still missing, and timings."""

    store: Path
    csv: Path
    done: list[tuple[str, int]]
    skipped: list[tuple[str, int]]
    missing: list[tuple[str, int]]
    seconds: float
    fields_per_minute: float
    interrupted: bool = False
    failed: list[tuple[str, int, str]] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines for people: fields complete, speed, the table, what is left to do."""
        total = len(self.done) + len(self.skipped) + len(self.missing)
        lines = [
            f"{len(self.done) + len(self.skipped)}/{total} fields complete in {self.store} "
            f"({len(self.done)} now, {len(self.skipped)} from an earlier run); "
            f"{self.fields_per_minute:.1f} fields/min",
            f"table: {self.csv}",
        ]
        if self.failed:
            lines.append(f"{len(self.failed)} field(s) failed (recorded in the store; a rerun retries them):")
            lines += [f"  {field_label(w, f)}: {reason}" for w, f, reason in self.failed]
        failed = {(w, f) for w, f, _ in self.failed}
        unfinished = [p for p in self.missing if p not in failed]
        if unfinished:
            names = ", ".join(field_label(w, f) for w, f in unfinished[:20])
            more = f" and {len(unfinished) - 20} more" if len(unfinished) > 20 else ""
            lines.append(f"not done ({'interrupted' if self.interrupted else 'failed'}): {names}{more}; "
                         "rerun the same command to finish them")
        return "\n".join(lines)


def field_seed(seed: int, well: str, field_index: int) -> int:
    """A per-field seed that does not depend on run order or worker."""
    return (seed * 1_000_003 + zlib.crc32(f"{well}/{field_index}".encode())) % (2**31 - 1)


def plan_fields(plate: Any, wells: Iterable[str] | None, fields: Iterable[int] | None) -> list[tuple[str, int]]:
    """The (well, field) pairs to process (fields 0-based), checked against the plate.

    Unknown wells raise ``ValueError`` naming them; so do fields asked for (``fields``)
    that a well lacks, naming the well and its field count. Without ``fields`` every
    field of each well is planned.
    """
    chosen = list(wells) if wells else list(plate.wells)
    unknown = [w for w in chosen if w not in plate.wells]
    if unknown:
        raise ValueError(f"{plate.path}: no images for well(s) {', '.join(unknown)}; "
                         f"the plate has {', '.join(plate.wells[:12])}{' …' if len(plate.wells) > 12 else ''}")
    pairs = []
    for w in chosen:
        n = plate.n_fields(w)
        wanted = list(fields) if fields is not None else list(range(n))
        lacking = [f for f in wanted if not 0 <= f < n]
        if lacking:
            raise ValueError(f"{plate.path}: well {w} has {n} field(s) (0-based 0..{n - 1}), "
                             f"no field {', '.join(map(str, lacking))}; choose --fields within that range")
        pairs += [(w, int(f)) for f in wanted]
    return pairs

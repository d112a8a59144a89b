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
    """What to explain: everything that defines the result store's contents."""

    plate: str
    model: str
    method: str = "pcim"
    target: str = "predicted"
    seed: int = 0
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)
    wells: list[str] | None = None
    fields: list[int] | None = None

    def fingerprint(self, model_sha256: str) -> str:
        """Hash of what determines the maps (not the device, wells or fields chosen)."""
        spec = {
            "model_sha256": model_sha256,
            "method": self.method,
            "target": self.target,
            "seed": self.seed,
            "options": self.options,
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class BatchReport:
    """What a run did: fields done now, skipped (already done), still missing, and timings."""

    store: Path
    csv: Path
    done: list[tuple[str, int]]
    skipped: list[tuple[str, int]]
    missing: list[tuple[str, int]]
    seconds: float
    fields_per_minute: float
    interrupted: bool = False

    def summary(self) -> str:
        """A few lines for people: fields complete, speed, the table, what is left to do."""
        total = len(self.done) + len(self.skipped) + len(self.missing)
        lines = [
            f"{len(self.done) + len(self.skipped)}/{total} fields complete in {self.store} "
            f"({len(self.done)} now, {len(self.skipped)} from an earlier run); "
            f"{self.fields_per_minute:.1f} fields/min",
            f"table: {self.csv}",
        ]
        if self.missing:
            names = ", ".join(field_label(w, f) for w, f in self.missing[:20])
            more = f" and {len(self.missing) - 20} more" if len(self.missing) > 20 else ""
            lines.append(f"not done ({'interrupted' if self.interrupted else 'failed'}): {names}{more}; "
                         "rerun the same command to finish them")
        return "\n".join(lines)


def field_seed(seed: int, well: str, field_index: int) -> int:
    """A per-field seed that does not depend on run order or worker."""
    return (seed * 1_000_003 + zlib.crc32(f"{well}/{field_index}".encode())) % (2**31 - 1)


def plan_fields(plate: Any, wells: Iterable[str] | None, fields: Iterable[int] | None) -> list[tuple[str, int]]:
    """The (well, field) pairs to process (fields 0-based), checked against the plate.

    Unknown wells raise ``ValueError`` naming them; fields a well lacks are left out.
    """
    chosen = list(wells) if wells else list(plate.wells)
    unknown = [w for w in chosen if w not in plate.wells]
    if unknown:
        raise ValueError(f"{plate.path}: no images for well(s) {', '.join(unknown)}; "
                         f"the plate has {', '.join(plate.wells[:12])}{' …' if len(plate.wells) > 12 else ''}")
    pairs = []
    for w in chosen:
        n = plate.n_fields(w)
        for f in (fields if fields is not None else range(n)):
            if 0 <= f < n:
                pairs.append((w, int(f)))
    return pairs

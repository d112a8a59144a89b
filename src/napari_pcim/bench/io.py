"""``napari-pcim bench io``: opening a big OME-Zarr plate, and explaining one of its fields.

:func:`make_big_plate` writes an NGFF 0.4 HCS plate (zarr format 2) of
``plate_format`` wells × ``fields`` fields of ``channels`` × ``size``² uint16 — by
default 384 × 9 × 5 × 2160², about 161 GB of pixels — without 161 GB of disk: the
project's :class:`~napari_pcim.plate_io.writers.ZarrPlateWriter` writes the plate and
well groups and one real field (synthetic foci cells, tiled from a 540² simulation);
every other field gets its own group metadata (the template field's NGFF attributes,
renamed) and **hard links** to that field's chunk files (symbolic links where hard links are
refused). So every chunk file exists (the reader's missing-chunk check passes, as on a
real plate) while the disk holds one field's chunks (~28 MB) and the metadata.

:func:`measure` then runs each measurement in a fresh Python process (``python -m
napari_pcim.bench.io open|explain ...``) so that peaks never mix. A child reports its
peak resident set size from the kernel's high-water mark (``VmHWM`` in
``/proc/self/status``, ``ru_maxrss`` elsewhere), which counts torch's native
allocations and the interpreter, unlike tracemalloc:

- ``open``: import time of :mod:`napari_pcim.plate_io`; ``open_plate`` time; the time to
  list every well's field count (what the well map needs); the peak RSS after that;
  and the time to read one field;
- ``explain``: one field read from the plate and explained with the bundled tiled
  ``foci_vgg`` (128² tiles, ``field_mode="tile"``) on ``device``, per method, with the
  method's default options unless ``options`` says otherwise: wall time and peak RSS.

Targets (issue 14): open < 2 s and < 1 GB; explain peak < 4 GB.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The big plate of the issue: 384 wells × 9 fields × 5 channels × 2160² uint16.
BIG = {"plate_format": 384, "fields": 9, "size": 2160, "channels": 5}
#: Channel names: the demo channels, then extra ones the model does not use.
CHANNELS = ("DAPI", "Actin", "GFP", "Brightfield", "Mito", "ER")
METHODS = ("input_x_gradient", "pcim")
MODEL = "foci_vgg"
TARGETS = {"open_s": 2.0, "open_peak_rss_mib": 1024.0, "explain_peak_rss_mib": 4096.0}
_MIB = 2**20


def _bench_field(size: int, channels: int, seed: int) -> Any:
    """A (channels, size, size) uint16 field: a 540² synthetic foci field tiled to ``size``²."""
    import numpy as np

    from napari_pcim.synth import generate_field

    base = generate_field("foci", True, size=min(size, 540), seed=seed).image
    reps = math.ceil(size / base.shape[-1])
    image = np.tile(base, (1, reps, reps))[:, :size, :size]
    extra = [np.flip(image[1 + i % 3], axis=i % 2) for i in range(channels - base.shape[0])]
    return np.ascontiguousarray(np.concatenate([image, np.stack(extra)]) if extra else image)


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # file systems without hard links
        os.symlink(src.resolve(), dst)


def make_big_plate(out: str | Path, *, plate_format: int = 384, fields: int = 9, size: int = 2160,
                   channels: int = 5, n_wells: int | None = None, seed: int = 0, overwrite: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the benchmark plate to ``out`` (module docstring); returns its path.

    Built in a temporary sibling folder and renamed into place (``atomic_directory``);
    an existing ``out`` is refused unless ``overwrite``. ``n_wells`` keeps only the first
    wells (small plates for tests); the plate format stays ``plate_format``.
    """
    from napari_pcim import atomic
    from napari_pcim.plate_io.wells import plate_grid, split_well
    from napari_pcim.plate_io.writers import ZarrPlateWriter, plate_json_attrs
    from napari_pcim.vocabulary import PIXEL_SIZE_UM, field_label

    if not 4 <= channels <= len(CHANNELS):
        raise ValueError(f"channels must be in [4, {len(CHANNELS)}], got {channels}")
    rows, columns = plate_grid(plate_format)
    wells = [f"{r}{c:02d}" for r in rows for c in columns][:n_wells]
    names = list(CHANNELS[:channels])
    image = _bench_field(size, channels, seed)
    with atomic.atomic_directory(out, overwrite=overwrite) as tmp:
        writer = ZarrPlateWriter(
            tmp, name=Path(out).name.split(".")[0] or "bench", rows=rows, columns=columns,
            wells=wells, n_fields=fields, channel_names=names, pixel_size=PIXEL_SIZE_UM,
            extra_attrs=plate_json_attrs(bench="io", unique_fields=1, size=size, channels=names),
        )
        writer.write_field(wells[0], 0, image, {})
        r0, c0 = split_well(wells[0])
        template = tmp / r0 / str(c0) / "0"
        attrs = json.loads((template / ".zattrs").read_text())
        chunks = sorted(p for p in (template / "0").iterdir() if not p.name.startswith("."))
        total, done = len(wells) * fields, 1
        for well in wells:
            r, c = split_well(well)
            for f in range(fields):
                if (well, f) == (wells[0], 0):
                    continue
                group = tmp / r / str(c) / str(f)
                (group / "0").mkdir(parents=True)
                name = field_label(well, f)
                attrs["multiscales"][0]["name"] = attrs["omero"]["name"] = name
                atomic.write_json(group / ".zgroup", {"zarr_format": 2})
                atomic.write_json(group / ".zattrs", attrs)
                atomic.write_bytes(group / "0" / ".zarray", (template / "0" / ".zarray").read_bytes())
                for chunk in chunks:
                    _link(chunk, group / "0" / chunk.name)
                done += 1
                if progress is not None:
                    progress(done, total)
    return Path(out)


def _peak_rss() -> int:
    """This process's peak resident set size in bytes (kernel high-water mark)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def child_open(plate: str) -> dict[str, Any]:
    """(In the measured process) open the plate, list every well's fields, read one field."""
    t0 = time.perf_counter()
    from napari_pcim.plate_io import open_plate

    t1 = time.perf_counter()
    p = open_plate(plate)
    t2 = time.perf_counter()
    n_fields = sum(p.n_fields(w) for w in p.wells)
    t3 = time.perf_counter()
    peak_open = _peak_rss()
    rss_open = _rss()
    field = p.read_field(p.wells[-1], p.n_fields(p.wells[-1]) - 1)
    t4 = time.perf_counter()
    return {
        "wells": len(p.wells), "fields": n_fields, "channels": list(p.channel_names),
        "field_shape": list(field.shape), "field_dtype": str(field.dtype),
        "nominal_gb": round(n_fields * field.nbytes / 1e9, 1),
        "import_s": round(t1 - t0, 3), "open_s": round(t2 - t1, 3), "list_fields_s": round(t3 - t2, 3),
        "open_peak_rss_mib": round(peak_open / _MIB, 1), "open_rss_mib": round(rss_open / _MIB, 1),
        "read_field_s": round(t4 - t3, 3), "peak_rss_after_read_mib": round(_peak_rss() / _MIB, 1),
    }


def child_explain(plate: str, method: str, device: str, options: dict[str, Any]) -> dict[str, Any]:
    """(In the measured process) read one field and explain it with the bundled tiled model."""
    from napari_pcim.classifier import bundled_model_path, load_classifier
    from napari_pcim.explainers import explain
    from napari_pcim.plate_io import open_plate

    p = open_plate(plate)
    field = p.read_field(p.wells[0], 0)
    clf = load_classifier(bundled_model_path(MODEL), device=device)
    before = _peak_rss()
    t0 = time.perf_counter()
    attr = explain(clf, field, method=method, device=device, plate_channels=p.channel_names, **options)
    return {
        "method": method, "device": device, "options": options, "seconds": round(time.perf_counter() - t0, 1),
        "map_shape": list(attr.maps.shape), "finite": bool(__import__("numpy").isfinite(attr.maps).all()),
        "tile": list(clf.meta.input_size), "field_mode": clf.meta.field_mode,
        "peak_rss_before_explain_mib": round(before / _MIB, 1),
        "explain_peak_rss_mib": round(_peak_rss() / _MIB, 1),
    }


def _run(args: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "napari_pcim.bench.io", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"bench io: {' '.join(args[:2])} failed:\n{out.stderr.strip()[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(plate: str | Path, *, methods: tuple[str, ...] = METHODS, device: str = "cpu",
            options: dict[str, dict[str, Any]] | None = None,
            log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Open and explain figures of ``plate`` (module docstring), each in a fresh process."""
    opened = _run(["open", str(plate)])
    if log is not None:
        log(f"open: {opened['open_s']} s, peak RSS {opened['open_peak_rss_mib']} MiB")
    rows = []
    for method in methods:
        opts = (options or {}).get(method, {})
        rows.append(_run(["explain", str(plate), method, device, json.dumps(opts)]))
        if log is not None:
            log(f"explain {method}: {rows[-1]['seconds']} s, peak RSS {rows[-1]['explain_peak_rss_mib']} MiB")
    met = {
        "open_s": opened["open_s"] < TARGETS["open_s"],
        "open_peak_rss_mib": opened["open_peak_rss_mib"] < TARGETS["open_peak_rss_mib"],
        "explain_peak_rss_mib": all(r["explain_peak_rss_mib"] < TARGETS["explain_peak_rss_mib"] for r in rows),
    }
    return {"plate": str(plate), "open": opened, "explain": rows, "targets": TARGETS, "targets_met": met}


def disk_usage(path: str | Path) -> int:
    """Bytes the plate folder takes on disk (each hard-linked inode counted once)."""
    seen, total = set(), 0
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


if __name__ == "__main__":
    kind, plate_arg, *rest = sys.argv[1:]
    if kind == "open":
        result = child_open(plate_arg)
    else:
        result = child_explain(plate_arg, rest[0], rest[1], json.loads(rest[2]) if len(rest) > 2 else {})
    print(json.dumps(result))

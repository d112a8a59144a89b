"""``napari-pcim bench memory``: peak memory of ``explain()`` on big fields, against the field's size.

Each (size, method) runs in a fresh Python process (``python -m
napari_pcim.bench.memory SIZE METHOD DEVICE``), so peaks never mix. That process
makes a 4-channel uint16 field of SIZE² (values 90–400, seeded), loads the bundled
``foci_vgg`` classifier and calls ``explain()`` once: PCIM with ``steps=1`` from one start and
RISE with ``n_masks=2``, so the run measures the memory of the machinery, not
of long optimisations. The parent samples the child's resident set size with
psutil every 5 ms (as :mod:`napari_pcim.bench.speed` does) and reports per row:

- ``peak_rss_mib``: the child's peak RSS, interpreter and torch included;
- ``field_mib``: the raw field array's size (4 · SIZE² · 2 bytes);
- ``ratio``: peak RSS ÷ field array;
- ``marginal``: from the previous size, the growth of the peak ÷ the growth of the
  field array (the memory each further byte of field costs).

``bounded`` (per method) is true when, from each size to the next, the peak grows
by no larger factor than the field array does (the ratio never rises, within 5 %).
:func:`measure` returns the figures; the CLI handler is
:func:`napari_pcim.cli.bench.bench_memory`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from napari_pcim.bench.quality_core import PCIM_ONE_START

#: Field sides measured by default.
SIZES: tuple[int, ...] = (1000, 4000, 8000)
#: Each method's options: the cheapest run that still goes through all of its machinery.
#: PCIM at one start: random starts run one after another and add one accumulated map.
BENCH_OPTIONS: dict[str, dict[str, Any]] = {
    "pcim": {"steps": 1, **PCIM_ONE_START}, "rise": {"n_masks": 2}}
CHANNELS = 4
_MIB = 2**20


def _field(size: int) -> Any:
    """The seeded 4-channel uint16 field of ``size``²."""
    import numpy as np

    return np.random.default_rng(0).integers(90, 400, (CHANNELS, size, size), dtype=np.uint16)


def run_child(size: int, method: str, device: str) -> dict[str, Any]:
    """One ``explain()`` call (in the measured process); returns its wall time and map shape."""
    from napari_pcim.classifier import bundled_model_path, load_classifier
    from napari_pcim.explainers import explain

    clf = load_classifier(bundled_model_path("foci_vgg"), device=device)
    field = _field(size)
    t0 = time.perf_counter()
    attr = explain(clf, field, method=method, device=device, **BENCH_OPTIONS[method])
    return {"seconds": time.perf_counter() - t0, "map_shape": list(attr.maps.shape)}


def peak_rss(size: int, method: str, device: str = "cpu") -> dict[str, Any]:
    """Run one (size, method) in a fresh process; its peak RSS and the field array's size."""
    import psutil

    cmd = [sys.executable, "-m", "napari_pcim.bench.memory", str(size), method, device]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        try:
            peak = max(peak, proc.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.005)
    out, err = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"bench memory: {size}² {method} failed:\n{err.strip()}")
    field_bytes = CHANNELS * size * size * 2
    result = json.loads(out.strip().splitlines()[-1])
    return {"size": size, "method": method, "peak_rss_mib": round(peak / _MIB, 1),
            "field_mib": round(field_bytes / _MIB, 1), "ratio": round(peak / field_bytes, 2),
            "seconds": round(result["seconds"], 1)}


def bounded(rows: list[dict[str, Any]]) -> bool:
    """True when the peak/field ratio never rises (by more than 5 %) from one size to the next."""
    ratios = [r["ratio"] for r in sorted(rows, key=lambda r: r["size"])]
    return all(b <= a * 1.05 for a, b in zip(ratios, ratios[1:]))


def measure(sizes: tuple[int, ...] = SIZES, methods: tuple[str, ...] = tuple(BENCH_OPTIONS),
            device: str = "cpu", log: Any = None) -> dict[str, Any]:
    """Peak RSS of every (method, size); ``bounded`` per method (module docstring)."""
    rows = []
    for method in methods:
        for size in sizes:
            row = peak_rss(size, method, device)
            if log is not None:
                log(f"{method} {size}²: peak {row['peak_rss_mib']} MiB, {row['seconds']} s")
            rows.append(row)
    for m in methods:
        own = sorted((r for r in rows if r["method"] == m), key=lambda r: r["size"])
        for a, b in zip(own, own[1:]):
            b["marginal"] = round((b["peak_rss_mib"] - a["peak_rss_mib"]) / (b["field_mib"] - a["field_mib"]), 2)
    return {"device": device, "rows": rows,
            "bounded": {m: bounded([r for r in rows if r["method"] == m]) for m in methods}}


if __name__ == "__main__":
    print(json.dumps(run_child(int(sys.argv[1]), sys.argv[2], sys.argv[3])))

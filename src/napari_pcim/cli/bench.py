"""``napari-pcim bench speed|quality|plate|ui``: the argparse-facing handlers.

Each handler reads its command-line flags, calls the typed benchmark functions of
:mod:`napari_pcim.bench` and prints the figures (a table, or JSON with ``--json``).
Heavy imports happen inside the handlers, so the parser stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def bench_speed(args: argparse.Namespace) -> int:
    """``napari-pcim bench speed [--device D] [--n N] [--fields F] [--json]``."""
    from napari_pcim.bench.speed import measure

    result = measure(
        getattr(args, "device", "auto") or "auto",
        n=int(getattr(args, "n", None) or 4000),
        n_fields=int(getattr(args, "fields", None) or 2),
    )
    if getattr(args, "json", False):
        print(json.dumps(result, indent=1))
    else:
        for key, value in result.items():
            print(f"{key:28s} {value:.4g}" if isinstance(value, float) else f"{key:28s} {value}")
    return 0


def bench_quality(args: argparse.Namespace) -> int:
    """``napari-pcim bench quality [--quick] [--fields F] [--json FILE] [--markdown FILE]``."""
    from napari_pcim.bench import quality
    from napari_pcim.devices import resolve_device

    quick = bool(getattr(args, "quick", False))
    device = str(resolve_device(getattr(args, "device", "auto") or "auto"))
    n_fields = args.fields if getattr(args, "fields", None) else (4 if quick else 50)
    specs, notes = quality.bundled_specs(device)
    if not specs:
        print("bench quality: no bundled models found (napari_pcim/data/models/*.pt); "
              "train them first (napari-pcim train ...)", file=sys.stderr)
        return 2
    if quick:
        # CI: one model per phenotype is enough to exercise every code path.
        first: dict[str, quality.ModelSpec] = {}
        for spec in specs:
            first.setdefault(spec.phenotype, spec)
        specs = list(first.values())
    t0 = time.perf_counter()
    result = quality.run_benchmark(
        specs,
        n_fields=n_fields,
        method_options=quality.QUICK_OPTIONS if quick else quality.FULL_OPTIONS,
        fidelity=quality.QUICK_FIDELITY if quick else quality.FULL_FIDELITY,
        device=device,
        n_boot=500 if quick else 2000,
        log=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    result.notes[:0] = notes
    result.settings["wall_seconds"] = round(time.perf_counter() - t0, 1)
    result.settings["command"] = (
        "napari-pcim bench quality" + (" --quick" if quick else "") + f" --fields {n_fields}"
    )
    print(quality.write_reports(result, json_out=getattr(args, "json_out", None),
                                markdown=getattr(args, "markdown", None)))
    return 0


def bench_plate(args: argparse.Namespace) -> int:
    """``napari-pcim bench plate``: fields/minute in-process and on dask, plus a cost model."""
    from napari_pcim.bench.plate import cost, measure

    figures = measure(wells=args.wells, fields=args.fields, size=args.size, method=args.method,
                      workers=args.workers, device=args.device)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    for key, value in figures.items():
        print(f"{key:34s} {value}")
    print("\npredicted wall time for a 384-well plate with 4 fields (1536 fields):")
    for n in (1, 2, 4, 8):
        print(f"  {n} worker(s): {cost(figures, 1536, n) / 60:8.1f} min")
    return 0


def bench_ui(args: argparse.Namespace) -> int:
    """``napari-pcim bench ui [--json]``: viewer stalls while explaining; 0 when targets are met."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get(
        "WAYLAND_DISPLAY"
    ):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from napari_pcim._napari.bench_ui import format_table, measure

    results = measure(getattr(args, "plate", None), getattr(args, "model", None))
    met = bool(results["targets_met"])
    print(json.dumps(results, indent=1) if getattr(args, "json", False) else format_table(results))
    return 0 if met else 1

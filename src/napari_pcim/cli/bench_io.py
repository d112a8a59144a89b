"""``napari-pcim bench io``: open time and memory of a big plate; peak memory of explaining one field.

:func:`add_io_parser` adds the ``io`` subcommand to the ``bench`` subparsers (called
from :func:`napari_pcim.cli.bench.add_bench_parsers`); :func:`bench_io` is its handler.
The figures come from :mod:`napari_pcim.bench.io`; heavy imports happen in the handler.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from napari_pcim.cli.options import at_least_one


def add_io_parser(bench: argparse._SubParsersAction) -> None:
    """Add ``bench io`` to the ``bench`` subcommands."""
    from napari_pcim.bench.io import BIG, METHODS

    p = bench.add_parser(
        "io", help="open time and memory of a 384-well × 9-field 2160² plate; peak memory of explaining one field",
    )
    p.add_argument("--plate", help="measure this OME-Zarr plate instead of writing the benchmark plate")
    p.add_argument("--out", help="write the benchmark plate here and keep it (default: a temporary folder, removed)")
    p.add_argument("--plate-format", type=int, choices=(96, 384, 1536), default=BIG["plate_format"])
    p.add_argument("--wells", type=at_least_one, default=None, help="only the first N wells (default: all)")
    p.add_argument("--fields", type=at_least_one, default=BIG["fields"], help="fields per well (default 9)")
    p.add_argument("--size", type=at_least_one, default=BIG["size"], help="field side in px (default 2160)")
    p.add_argument("--channels", type=int, choices=(4, 5, 6), default=BIG["channels"])
    p.add_argument("--methods", nargs="+", default=list(METHODS), metavar="METHOD",
                   help=f"methods to explain one field with (default: {' '.join(METHODS)})")
    p.add_argument("--quick", action="store_true", help="PCIM with 1 step (memory of the machinery only)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler="napari_pcim.cli.bench_io:bench_io")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bench_io(args: argparse.Namespace) -> int:
    """``napari-pcim bench io``: 0 when the open (< 2 s, < 1 GB) and explain (< 4 GB) targets are met."""
    import shutil

    from napari_pcim.bench.io import disk_usage, make_big_plate, measure

    tmp = None
    written = None
    if args.plate:
        plate = Path(args.plate)
    else:
        if args.out:
            plate = Path(args.out)
        else:
            tmp = Path(tempfile.mkdtemp(prefix="napari-pcim-bench-io-"))
            plate = tmp / "bench_io.zarr"
        _log(f"writing the benchmark plate {plate} …")
        t0 = time.perf_counter()
        make_big_plate(plate, plate_format=args.plate_format, fields=args.fields, size=args.size,
                       channels=args.channels, n_wells=args.wells)
        written = round(time.perf_counter() - t0, 1)
    try:
        options = {"pcim": {"steps": 1}} if args.quick else {}
        result = measure(plate, methods=tuple(args.methods), device=args.device, options=options, log=_log)
        result["disk_mib"] = round(disk_usage(plate) / 2**20, 1)
        result["written_s"] = written
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(format_table(result))
    return 0 if all(result["targets_met"].values()) else 1


def format_table(result: dict) -> str:
    """The figures of :func:`napari_pcim.bench.io.measure` as a readable table."""
    o, t, met = result["open"], result["targets"], result["targets_met"]
    yes = {True: "yes", False: "NO"}
    c, y, x = o["field_shape"]
    lines = [
        f"plate            {result['plate']}",
        (f"                 {o['wells']} wells, {o['fields']} fields of {c} × {y}×{x} {o['field_dtype']}: "
         f"{o['nominal_gb']} GB nominal, {result.get('disk_mib', '?')} MiB on disk"
         + (f" (written in {result['written_s']} s)" if result.get("written_s") is not None else "")),
        (f"open_plate       {o['open_s']:.2f} s (+ import {o['import_s']:.2f} s, listing every well's "
         f"fields {o['list_fields_s']:.2f} s)   target < {t['open_s']:.0f} s: {yes[met['open_s']]}"),
        (f"open peak RSS    {o['open_peak_rss_mib']:.0f} MiB   target < {t['open_peak_rss_mib']:.0f} MiB: "
         f"{yes[met['open_peak_rss_mib']]}"),
        f"read one field   {o['read_field_s']:.2f} s",
    ]
    for r in result["explain"]:
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items()) or "default options"
        lines.append(
            f"explain {r['method']:<17s} peak RSS {r['explain_peak_rss_mib']:.0f} MiB "
            f"({r['seconds']} s on {r['device']}, {opts}, {r['field_mode']} {r['tile'][0]}² tiles)   "
            f"target < {t['explain_peak_rss_mib']:.0f} MiB: {yes[r['explain_peak_rss_mib'] < t['explain_peak_rss_mib']]}"
        )
    return "\n".join(lines)

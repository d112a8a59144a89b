"""``napari-pcim bench speed|quality|plate|memory|ui|io|views|tune``: the bench parsers and their handlers.

:func:`add_bench_parsers` adds the ``bench`` subcommands to the main parser. Each
handler reads its command-line flags, calls the typed benchmark functions of
:mod:`napari_pcim.bench` and prints the figures (a table, or JSON with ``--json``).
Heavy imports happen inside the handlers, so the parser stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from napari_pcim.cli.bench_io import add_io_parser
from napari_pcim.cli.bench_tune import add_tune_parser
from napari_pcim.cli.bench_views import add_views_parser
from napari_pcim.cli.options import at_least_one


def add_bench_parsers(sub: argparse._SubParsersAction, method_choices: Sequence[str]) -> None:
    """Add ``bench speed|quality|plate|memory|ui|io|views|tune`` to the main parser's subcommands.

    ``method_choices``: the explain methods (read lazily by the caller, so building the
    parser imports no torch). Counts must be integers ≥ 1.
    """
    p = sub.add_parser("bench", help="benchmarks that print figures")
    bench = p.add_subparsers(dest="bench", metavar="{speed,quality,plate,memory,ui,io,views,tune}", required=True)

    s = bench.add_parser("speed", help="cost model: s/MP, passes/MP, ÷ forward floor, ÷ reference RISE")
    s.add_argument("--device", default="auto")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.add_argument("--n", type=at_least_one, default=4000, help="RISE mask cap per field (default 4000)")
    s.add_argument("--fields", type=at_least_one, default=2, help="fields timed per method (default 2)")
    s.add_argument("--threads", type=at_least_one, nargs="+", default=[1, 2],
                   help="torch thread counts (default 1 2)")
    s.add_argument("--repeats", type=at_least_one, default=3, help="repeats, order rotated (default 3)")
    s.add_argument("--pcim-sizes", type=at_least_one, nargs="*", default=[512, 2048],
                   help="field sides for PCIM seconds per megapixel (default 512 2048)")
    s.add_argument("--memory", action="store_true", help="also RISE's peak extra memory at 512²")
    s.add_argument("--markdown", action="store_true", help="print the docs' markdown tables")
    s.set_defaults(handler="napari_pcim.cli.bench:bench_speed")

    q = bench.add_parser("quality", help="localisation and fidelity of every method")
    q.add_argument("--quick", action="store_true", help="few fields, for CI")
    q.add_argument("--json", dest="json_out", help="write the JSON rows to this file")
    q.add_argument("--markdown", help="write the markdown table to this file")
    q.add_argument("--fields", type=at_least_one, default=None,
                   help="fields per phenotype and model")
    q.add_argument("--device", default="auto")
    q.add_argument("--jobs", type=at_least_one, default=1,
                   help="models benchmarked at once, in worker processes of one torch thread each")
    q.set_defaults(handler="napari_pcim.cli.bench:bench_quality")

    pl = bench.add_parser("plate", help="whole-plate fields/minute, in-process and on local dask workers")
    pl.add_argument("--wells", type=at_least_one, default=8, help="wells to explain (default 8)")
    pl.add_argument("--fields", type=at_least_one, default=1, help="fields per well (default 1)")
    pl.add_argument("--size", type=at_least_one, default=256, help="field size (default 256)")
    pl.add_argument("--method", choices=method_choices, default="pcim", metavar="METHOD",
                    help="attribution method: %(choices)s (default %(default)s)")
    pl.add_argument("--workers", type=at_least_one, default=2)
    pl.add_argument("--device", default="cpu")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(handler="napari_pcim.cli.bench:bench_plate")

    m = bench.add_parser("memory", help="peak RSS of explain() at 1000², 4000² and 8000² (PCIM, RISE)")
    m.add_argument("--sizes", type=at_least_one, nargs="+", default=None, metavar="SIZE",
                   help="field sides (default 1000 4000 8000)")
    m.add_argument("--device", default="cpu")
    m.add_argument("--json", action="store_true")
    m.set_defaults(handler="napari_pcim.cli.bench:bench_memory")

    u = bench.add_parser("ui", help="event-loop stalls while explaining in the viewer")
    u.add_argument("--json", action="store_true")
    u.set_defaults(handler="napari_pcim.cli.bench:bench_ui")
    add_io_parser(bench)
    add_views_parser(bench, method_choices)
    add_tune_parser(bench)


def bench_speed(args: argparse.Namespace) -> int:
    """``napari-pcim bench speed [--threads 1 2] [--n N] [--fields F] [--pcim-sizes ...] [--json]``."""
    from napari_pcim.bench.speed import format_markdown, format_table, measure

    result = measure(args.device, n=args.n, n_fields=args.fields, threads=tuple(args.threads),
                     repeats=args.repeats, pcim_sizes=tuple(args.pcim_sizes), memory=args.memory,
                     log=lambda msg: print(msg, file=sys.stderr, flush=True))
    if getattr(args, "json", False):
        print(json.dumps(result, indent=1))
    else:
        print(format_markdown(result) if getattr(args, "markdown", False) else format_table(result))
    return 0


def bench_quality(args: argparse.Namespace) -> int:
    """``napari-pcim bench quality [--quick] [--fields F] [--jobs J] [--json FILE] [--markdown FILE]``:
    every bundled model (:func:`napari_pcim.bench.quality_all.run`)."""
    from napari_pcim.bench.quality_all import run

    return run(quick=bool(args.quick), n_fields=args.fields, json_out=args.json_out,
               markdown=args.markdown, device=args.device, jobs=args.jobs)


def bench_plate(args: argparse.Namespace) -> int:
    """``napari-pcim bench plate``: fields/minute in-process and on dask, plus a cost model."""
    from napari_pcim.bench.plate import measure

    figures = measure(wells=args.wells, fields=args.fields, size=args.size, method=args.method,
                      workers=args.workers, device=args.device)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    for key, value in figures.items():
        print(f"{key:34s} {value}")
    print(f"\nprojection of the measured {figures['fields']}-field run: "
          f"{figures['projected_in_process_seconds']:.1f} s vs measured "
          f"{figures['measured_in_process_seconds']:.1f} s ({figures['projection_error']:+.0%}; "
          f"{'within' if figures['projection_within_20pct'] else 'NOT within'} 20 %)")
    print("projected wall time, 384-well plate × 4 fields (1536 fields), one thread per worker:")
    for side, row in figures["plate_384x4"].items():
        cells = "  ".join(f"{w} worker(s) {s / 3600:6.2f} h" for w, s in row.items())
        print(f"  {side}²: {cells}")
    return 0


def bench_memory(args: argparse.Namespace) -> int:
    """``napari-pcim bench memory``: peak RSS per field size; 0 when it grows no faster than the field."""
    from napari_pcim.bench.memory import SIZES, measure

    result = measure(tuple(args.sizes or SIZES), device=args.device,
                     log=lambda msg: print(msg, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{'method':8s} {'field':>7s} {'peak RSS MiB':>13s} {'field MiB':>10s} "
              f"{'peak/field':>11s} {'marginal':>9s} {'seconds':>8s}")
        for r in result["rows"]:
            marginal = f"{r['marginal']:.2f}" if "marginal" in r else "-"
            print(f"{r['method']:8s} {r['size']:>6d}² {r['peak_rss_mib']:>13.1f} {r['field_mib']:>10.1f} "
                  f"{r['ratio']:>11.2f} {marginal:>9s} {r['seconds']:>8.1f}")
        for method, ok in result["bounded"].items():
            print(f"{method}: peak grows no faster than the field array: {'yes' if ok else 'NO'}")
    return 0 if all(result["bounded"].values()) else 1


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

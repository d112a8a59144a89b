"""``napari-pcim bench views``: the channel, cell and well questions answered on the demo plate.

The parser and its handler; the measuring lives in :mod:`napari_pcim.bench.views`.
"""

from __future__ import annotations

import argparse
import json
import sys


def _columns(text: str) -> list[int]:
    try:
        cols = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        cols = []
    if not cols or any(not 1 <= c <= 48 for c in cols):
        raise argparse.ArgumentTypeError(f"expected plate columns like 1,2,11,12, got {text!r}")
    return cols


def add_views_parser(bench: argparse._SubParsersAction, method_choices: list[str] | tuple[str, ...]) -> None:
    """Add ``bench views`` to the ``bench`` subcommands."""
    v = bench.add_parser("views", help="channel, cell and well answers on the demo plate")
    v.add_argument("--columns", type=_columns, default=None,
                   help="plate columns to explain, e.g. 1,2,11,12 (default: every well)")
    v.add_argument("--method", choices=method_choices, default="pcim", metavar="METHOD",
                   help="attribution method: %(choices)s (default %(default)s)")
    v.add_argument("--json", action="store_true", help="print JSON instead of the report")
    v.set_defaults(handler="napari_pcim.cli.bench_views:bench_views")


def bench_views(args: argparse.Namespace) -> int:
    """Explain the demo plate and print the three answers (see :mod:`napari_pcim.bench.views`)."""
    from napari_pcim.bench.views import format_report, measure

    figures = measure(method=args.method, columns=args.columns,
                      log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(json.dumps(figures, indent=1, default=str) if args.json else format_report(figures))
    return 0

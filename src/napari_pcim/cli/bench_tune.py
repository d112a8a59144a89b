"""``napari-pcim bench tune pcim|rise``: choose methods' defaults on the tuning fields.

Both run on treated fields generated from :data:`napari_pcim.bench.quality.TUNING_SEED`,
never from the evaluation seed the quality benchmark reports on (docs/benchmarks.md).

- ``tune pcim`` (:mod:`napari_pcim.bench.quality_tuning`): each PCIM variant's rank
  metrics, flat maps and seconds per field, per bundled model, then the means;
  ``--grid``: random starts × start noise × σ, and the options chosen by the stated rule.
- ``tune rise configs|stopping`` (:mod:`napari_pcim.bench.rise_tuning`): RISE mask
  settings, or the masks used per convergence tolerance against the CI of the capped map.
  ``--set KEY=VALUE`` takes any RISE option, checked like ``explain --set``.

:func:`add_tune_parser` adds the subcommand (from :func:`napari_pcim.cli.bench.add_bench_parsers`).
"""

from __future__ import annotations

import argparse

from napari_pcim.cli.options import at_least_one


def add_tune_parser(bench: argparse._SubParsersAction) -> None:
    """Add ``bench tune pcim|rise`` to the ``bench`` subcommands."""
    tune = bench.add_parser("tune", help="choose PCIM's or RISE's defaults on the tuning fields")
    which = tune.add_subparsers(dest="tune", metavar="{pcim,rise}", required=True)

    p = which.add_parser("pcim", help="PCIM variants: rank metrics, flat maps, s/field")
    p.add_argument("--fields", type=at_least_one, default=8, help="tuning fields per model (default 8)")
    p.add_argument("--models", nargs="+", default=None, metavar="MODEL", help="bundled models (default: all)")
    p.add_argument("--variants", nargs="+", default=None, metavar="VARIANT",
                   help="variants of napari_pcim.bench.quality_tuning.VARIANTS (default: all)")
    p.add_argument("--fidelity", action="store_true", help="also deletion AUC and SRG")
    p.add_argument("--grid", action="store_true",
                   help="random starts × start noise × the map's σ (GRID_VARIANTS) instead, "
                        "and the options chosen overall and per model")
    p.set_defaults(handler="napari_pcim.cli.bench_tune:tune_pcim")

    r = which.add_parser("rise", help="RISE mask settings, or masks used per stopping tolerance")
    r.add_argument("stage", choices=("configs", "stopping"))
    r.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                   help="bundled models (configs: one per phenotype; stopping: all)")
    r.add_argument("--fields", type=at_least_one, default=4, help="tuning fields per model (default 4)")
    r.add_argument("--cap", type=at_least_one, default=None,
                   help="masks per field (default: configs 1000, stopping 4000)")
    r.add_argument("--set", dest="options", action="append", default=[], metavar="KEY=VALUE",
                   help="a RISE option for every run, e.g. --set grid=8 --set p=0.5 (repeatable)")
    r.set_defaults(handler="napari_pcim.cli.bench_tune:tune_rise")


def tune_pcim(args: argparse.Namespace) -> int:
    """``napari-pcim bench tune pcim``: one row per (model, variant), then the means."""
    from napari_pcim.bench.quality_tuning import (
        GRID_VARIANTS,
        VARIANTS,
        choose_grid,
        print_summary,
        tune,
    )

    known = GRID_VARIANTS if args.grid else VARIANTS
    unknown = sorted(set(args.variants or ()) - set(known))
    if unknown:
        raise ValueError(f"--variants: unknown {unknown}; variants: {list(known)}")
    variants = {k: known[k] for k in args.variants} if args.variants else known
    rows = tune(args.fields, tuple(args.models) if args.models else None, variants, args.fidelity)
    print_summary(rows)
    if args.grid:
        overall, per_model = choose_grid(rows)
        print("\nchosen (within the tie of the best rank mean: fewest starts, least σ, least noise):")
        for name, opts in {"overall": overall, **per_model}.items():
            print(f"  {name}: " + ", ".join(f"{k}={v:g}" for k, v in opts.items()))
    return 0


def tune_rise(args: argparse.Namespace) -> int:
    """``napari-pcim bench tune rise configs|stopping``: JSON lines, then (stopping) a table."""
    from napari_pcim.bench.rise_tuning import tune
    from napari_pcim.cli.options import parse_set_options

    tune(args.stage, args.models, args.fields, args.cap, parse_set_options("rise", args.options))
    return 0

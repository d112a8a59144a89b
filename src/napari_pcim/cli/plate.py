"""``napari-pcim make-plate`` and whole-plate ``napari-pcim explain`` (``--all-wells``).

Thin handlers: they turn the parsed command line into typed calls of
:func:`napari_pcim.synth.make_plate` and :func:`napari_pcim.batch.run_plate`, with a
progress bar on stderr.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from napari_pcim.cli.options import parse_fields, parse_wells
from napari_pcim.cli.progress import console_progress


def run_make_plate(args: argparse.Namespace) -> int:
    """``napari-pcim make-plate OUT``: write a synthetic plate with ground truth."""
    from napari_pcim.cli.outputs import check_out
    from napari_pcim.synth import make_plate

    check_out(args.out, "plate", overwrite=args.overwrite)
    t0 = time.perf_counter()
    with console_progress(f"{args.phenotype} plate", unit="field") as progress:
        out = make_plate(args.out, plate_format=args.plate_format, fields=args.fields, size=args.size,
                         phenotype=args.phenotype, seed=args.seed,
                         layout="tiff" if args.tiff else "zarr", overwrite=args.overwrite,
                         progress=progress)
    print(f"wrote {out} in {time.perf_counter() - t0:.1f} s")
    return 0


def run_explain_plate(args: argparse.Namespace, options: dict[str, Any]) -> int:
    """``napari-pcim explain PLATE --all-wells --out RESULT.zarr`` (or ``--wells`` with a .zarr out).

    Exit status 0 when every field is done, 2 when some failed (``--skip-failed``; they are
    listed), 1 when some are missing otherwise, 130 when interrupted.
    """
    from napari_pcim.batch import BatchJob, reading_of, run_plate
    from napari_pcim.classifier import resolve_model_path
    from napari_pcim.cli.outputs import refuse_inputs
    from napari_pcim.cli.plate_args import plate_read_kwargs
    from napari_pcim.plate_io import open_plate

    model = resolve_model_path(args.model)
    refuse_inputs(args.out, (args.plate, model))
    plate = open_plate(args.plate, **plate_read_kwargs(args))

    job = BatchJob(
        plate=args.plate, model=str(model), method=args.method,
        target=args.target, seed=args.seed, device=args.device, options=options,
        wells=None if args.all_wells else parse_wells(args.wells),
        fields=parse_fields(args.fields), per_channel=args.per_channel,
        reading=reading_of(plate, getattr(args, "pattern", None)),
    )
    with console_progress(f"{job.method} fields", unit="field") as progress:
        report = run_plate(job, args.out, plate=plate, progress=progress, workers=args.workers,
                           scheduler=args.dask_scheduler, skip_failed=args.skip_failed)
    print(report.summary())
    if report.interrupted:
        return 130
    return 2 if report.failed else (1 if report.missing else 0)

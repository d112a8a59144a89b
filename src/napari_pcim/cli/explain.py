"""``napari-pcim explain PLATE --model M --method pcim|rise --wells B03,C05 --out OUT``.

Opens the plate, explains the chosen fields one by one (a tqdm progress bar on
stderr), prints the classifier's probabilities per field and writes, per field,
the channels, the attribution maps (named like ``"PCIM · treated"``) and the
plate's label images with :func:`napari_pcim.export.write_annotated_field`.
With more than one field each file gets a ``_B03_f0`` suffix. Whole plates
(``--all-wells``) go to the resumable batch runner (:mod:`napari_pcim.batch`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from napari_pcim.export import TIFF_SUFFIXES, ZARR_SUFFIXES


def _split_out(out: Path) -> tuple[str, str]:
    name = out.name
    for suffix in TIFF_SUFFIXES + ZARR_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)], name[-len(suffix) :]
    raise ValueError(
        f"--out {out}: expected a name ending in {', '.join(TIFF_SUFFIXES + ZARR_SUFFIXES)}"
    )


def output_paths(out: str | Path, items: list[tuple[str, int]]) -> dict[tuple[str, int], Path]:
    """One output path per (well, field): OUT itself for one field, else ``OUT_B03_f0``."""
    out = Path(out)
    stem, suffix = _split_out(out)
    if len(items) == 1:
        return {items[0]: out}
    return {(w, f): out.with_name(f"{stem}_{w}_f{f}{suffix}") for w, f in items}


def run_explain(args: argparse.Namespace) -> int:
    """Entry point of ``napari-pcim explain`` (argparse namespace from ``_cli``)."""
    if getattr(args, "all_wells", False) or (
        str(args.out).endswith(".zarr") and not str(args.out).lower().endswith(ZARR_SUFFIXES)
    ):
        from napari_pcim.batch import run_plate_cli

        return run_plate_cli(args)
    if not args.wells:
        raise ValueError("give --wells (e.g. --wells B03,C05) or --all-wells")

    from tqdm import tqdm

    from napari_pcim.classifier import load_classifier, resolve_model_path
    from napari_pcim.explainers import METHOD_LABELS, explain
    from napari_pcim.export import write_annotated_field
    from napari_pcim.plate_io import open_plate

    plate = open_plate(args.plate)
    wells = [w.strip().upper() for w in args.wells.split(",") if w.strip()]
    missing = [w for w in wells if w not in plate.wells]
    if missing:
        raise ValueError(
            f"{plate.path}: no well(s) {missing}; available wells: {', '.join(plate.wells)}"
        )
    try:
        field_ids = [int(f) for f in str(args.fields if args.fields is not None else "0").split(",")]
    except ValueError:
        raise ValueError(f"--fields {args.fields!r}: expected comma-separated integers, e.g. 0,1") from None
    items = []
    for w in wells:
        for f in field_ids:
            if not 0 <= f < plate.n_fields(w):
                raise ValueError(f"{plate.path}: well {w} has {plate.n_fields(w)} field(s) (0-based), no field {f}")
            items.append((w, f))
    paths = output_paths(args.out, items)
    overwrite = bool(getattr(args, "overwrite", False))
    if not overwrite:
        taken = [str(p) for p in paths.values() if p.exists()]
        if taken:
            raise FileExistsError(f"output exists: {', '.join(taken)}; pass --overwrite to replace")

    model_path = resolve_model_path(args.model)
    clf = load_classifier(model_path, device=args.device, channels=plate.channel_names)
    options: dict[str, Any] = dict(getattr(args, "options", None) or {})
    target = None if args.target in (None, "predicted") else args.target
    label = METHOD_LABELS.get(args.method, args.method.upper())
    for well, field in items:
        image = plate.read_field(well, field)
        bar = tqdm(total=1, desc=f"{label} {well} f{field}", file=sys.stderr, leave=False)

        def progress(done: int, total: int, bar: Any = bar) -> None:
            bar.total = total
            bar.update(done - bar.n)  # redraws at most every tqdm mininterval

        attr = explain(clf, image, method=args.method, target=target, device=args.device,
                       progress=progress, seed=getattr(args, "seed", 0),
                       plate_channels=plate.channel_names, **options)
        bar.close()
        probs = "  ".join(f"{c} {p:.3f}" for c, p in zip(attr.classes, attr.probabilities[0]))
        predicted = attr.classes[int(attr.probabilities[0].argmax())]
        print(f"{well} f{field}: {probs}  → {predicted}  ({attr.timings['total']:.2f} s)")
        try:
            labels = plate.read_labels(well, field)
        except ValueError:
            labels = {}
        path = write_annotated_field(
            paths[(well, field)],
            channels={name: image[i] for i, name in enumerate(plate.channel_names)},
            maps={attr.label(0, t): attr.maps[0, t] for t in range(attr.maps.shape[1])},
            labels=labels,
            pixel_size=plate.pixel_size,
            metadata={"well": well, "field": field, "plate": str(plate.path),
                      "model": str(model_path), "model_sha256": clf.sha256, **attr.to_dict()},
            overwrite=overwrite,
        )
        print(f"  wrote {path}")
    return 0

"""``napari-pcim explain PLATE --model M --method pcim|rise --wells B03,C05 --out OUT``.

Opens the plate, explains the chosen fields one by one (a progress bar on stderr),
prints the classifier's probabilities per field and writes, per field, the channels,
the attribution maps (named like ``"PCIM · treated"``) and the plate's label images
with :func:`napari_pcim.export.write_annotated_field`. With more than one field each
file gets a ``_B03_f0`` suffix. With ``--per-channel`` each field's channel importance
is printed (``channels: DAPI 0.05  Actin 0.03  GFP 0.89  Brightfield 0.03``) and the
per-channel maps join the export as channels named like ``"PCIM · treated · GFP"``.
It is a flag, not the default: PCIM then runs its ``isolation="pixel-channel"`` variant
(as fast, but a different map), and ablation methods run one extra field pass per channel.
Whole plates (``--all-wells``, or a ``RESULT.zarr``
out) go to the resumable batch runner (:func:`napari_pcim.cli.plate.run_explain_plate`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from napari_pcim.cli.options import parse_fields, parse_set_options, parse_wells
from napari_pcim.cli.plate_args import plate_read_kwargs
from napari_pcim.cli.progress import console_progress
from napari_pcim.export import TIFF_SUFFIXES, ZARR_SUFFIXES
from napari_pcim.vocabulary import FIRST_FIELD, field_label, field_stem


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
    return {(w, f): out.with_name(f"{stem}_{field_stem(w, f)}{suffix}") for w, f in items}


def _is_plate_run(args: argparse.Namespace) -> bool:
    out = str(args.out)
    return bool(args.all_wells) or (out.endswith(".zarr") and not out.lower().endswith(ZARR_SUFFIXES))


def run_explain(args: argparse.Namespace) -> int:
    """Entry point of ``napari-pcim explain``: check ``--set``, then per-field or whole-plate."""
    if args.all_wells and args.wells:
        raise ValueError(f"--all-wells and --wells {args.wells} contradict each other; give one of them")
    options = parse_set_options(args.method, args.options)
    if _is_plate_run(args):
        from napari_pcim.cli.plate import run_explain_plate

        return run_explain_plate(args, options)
    if not args.wells:
        raise ValueError("give --wells (e.g. --wells B03,C05) or --all-wells")
    return explain_fields(
        args.plate, args.model, args.method, parse_wells(args.wells),
        parse_fields(args.fields) or [FIRST_FIELD], args.out, options=options,
        target=args.target, device=args.device, seed=args.seed, overwrite=args.overwrite,
        per_channel=args.per_channel, reading=plate_read_kwargs(args),
    )


def explain_fields(plate_path: str, model: str, method: str, wells: list[str], fields: list[int],
                   out: str, *, options: dict[str, Any], target: str, device: str, seed: int,
                   overwrite: bool, per_channel: bool = False,
                   reading: dict[str, Any] | None = None) -> int:
    """Explain each (well, field), print its probabilities and write one annotated file each;
    with ``per_channel`` also its channel importance and per-channel maps. ``reading``:
    :func:`~napari_pcim.plate_io.open_plate` keywords (z, t, channel map, pattern), recorded
    in each file's metadata."""
    from napari_pcim.classifier import load_classifier, resolve_model_path
    from napari_pcim.cli.outputs import check_out
    from napari_pcim.explainers import explain, method_label
    from napari_pcim.export import write_annotated_field
    from napari_pcim.plate_io import open_plate

    from napari_pcim.batch import reading_of

    plate = open_plate(plate_path, **(reading or {}))
    missing = [w for w in wells if w not in plate.wells]
    if missing:
        raise ValueError(
            f"{plate.path}: no well(s) {missing}; available wells: {', '.join(plate.wells)}"
        )
    items = []
    for w in wells:
        for f in fields:
            if not 0 <= f < plate.n_fields(w):
                raise ValueError(f"{plate.path}: well {w} has {plate.n_fields(w)} field(s) (0-based), no field {f}")
            items.append((w, f))
    paths = output_paths(out, items)
    model_path = resolve_model_path(model)
    if not overwrite:
        taken = [str(p) for p in paths.values() if p.exists()]
        if taken:
            raise FileExistsError(f"output exists: {', '.join(taken)}; pass --overwrite to replace")
    for path in paths.values():
        check_out(path, "export", overwrite=overwrite, inputs=(plate.path, model_path))

    clf = load_classifier(model_path, device=device, channels=plate.channel_names)
    explained = None if target in (None, "predicted") else target
    label = method_label(method)
    for well, field in items:
        image = plate.read_field(well, field)
        with console_progress(f"{label} {field_label(well, field)}", leave=False) as progress:
            attr = explain(clf, image, method=method, target=explained, device=device,
                           progress=progress, seed=seed, plate_channels=plate.channel_names,
                           field_names=[field_label(well, field)], per_channel=per_channel,
                           **options)
        probs = "  ".join(f"{c} {p:.3f}" for c, p in zip(attr.classes, attr.probabilities[0]))
        predicted = attr.classes[int(attr.probabilities[0].argmax())]
        print(f"{field_label(well, field)}: {probs}  → {predicted}  ({attr.timings['total']:.2f} s)")
        maps = {attr.label(0, t): attr.maps[0, t] for t in range(attr.maps.shape[1])}
        if attr.channel_importance is not None:
            _print_channels(attr)
            maps.update(_channel_maps(attr))
        labels = plate.read_labels(well, field)  # a damaged label array is an error, never {}
        map_meta = {attr.label(0, t): {"method": attr.method, "label": label,
                                       "target": attr.classes[int(attr.targets[0, t])]}
                    for t in range(attr.maps.shape[1])}
        path = write_annotated_field(
            paths[(well, field)],
            channels={name: image[i] for i, name in enumerate(plate.channel_names)},
            maps=maps,
            labels=labels,
            pixel_size=plate.pixel_size,
            metadata={"well": well, "field": field, "plate": str(plate.path),
                      "reading": reading_of(plate, (reading or {}).get("pattern")),
                      "phenotype": plate.metadata.get("phenotype"),
                      "model": str(model_path), "model_sha256": clf.sha256, **attr.to_dict()},
            map_metadata=map_meta,
            overwrite=overwrite,
        )
        print(f"  wrote {path}")
    return 0


def _print_channels(attr: Any) -> None:
    """One ``channels:`` line per explained target: each channel's share of the attribution."""
    n_targets = attr.channel_importance.shape[1]
    for t in range(n_targets):
        shares = "  ".join(f"{c} {v:.2f}" for c, v in
                           zip(attr.channel_names, attr.channel_importance[0, t]))
        which = f" ({attr.classes[int(attr.targets[0, t])]})" if n_targets > 1 else ""
        print(f"  channels{which}: {shares}")


def _channel_maps(attr: Any) -> dict[str, Any]:
    """The per-channel maps of the first field, named like ``"PCIM · treated · GFP"``."""
    return {f"{attr.label(0, t)} · {c}": attr.channel_maps[0, t, i]
            for t in range(attr.channel_maps.shape[1]) for i, c in enumerate(attr.channel_names)}

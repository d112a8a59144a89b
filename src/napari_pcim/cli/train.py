"""``napari-pcim train``: train a demo classifier (or a PixelCAM model) and export it, or evaluate one.

Thin handlers over :mod:`napari_pcim.training`: the parsed command line becomes typed
calls; progress goes to a bar on stderr, the figures to stdout (JSON on the last line).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from napari_pcim.cli.progress import console_progress


def _check_counts(args: argparse.Namespace) -> None:
    """``--epochs`` and ``--n-train`` are counts: absent (the default) or >= 1, never 0."""
    for flag, value in (("--epochs", args.epochs), ("--n-train", args.n_train)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} {value}: expected an integer >= 1 (leave it out for the default)")


def run_train(args: argparse.Namespace) -> int:
    """Train and export ``--out``; with ``--evaluate`` evaluate it; ``--pixelcam`` for PixelCAM.

    Training refuses an existing ``--out`` without ``--overwrite``, and with it anything
    but a napari-pcim model (:func:`napari_pcim.cli.outputs.check_out`).
    """
    from napari_pcim.cli.outputs import check_out

    _check_counts(args)
    if not args.evaluate:
        check_out(args.out, "model", overwrite=args.overwrite, inputs=(args.plate,))
    if args.pixelcam:
        return _evaluate_pixelcam(args) if args.evaluate else _train_pixelcam(args)
    return _evaluate(args) if args.evaluate else _train(args)


def _train(args: argparse.Namespace) -> int:
    from napari_pcim.training.classifier_training import default_schedule, train_classifier

    n_train, epochs = default_schedule(args.phenotype)
    with console_progress(f"train {args.phenotype}/{args.arch}", unit="step") as progress:
        metrics = train_classifier(
            args.phenotype, args.arch, args.out, plate=args.plate, seed=args.seed,
            n_train=n_train if args.n_train is None else args.n_train,
            epochs=epochs if args.epochs is None else args.epochs, device=args.device,
            progress=progress,
        )
    print(
        f"wrote {metrics['path']} ({metrics['size_bytes'] / 1e6:.2f} MB) in {metrics['seconds']:.0f} s; "
        f"validation accuracy {metrics['val_accuracy']:.3f} on {metrics['n_val']} held-out fields",
        file=sys.stderr,
    )
    print(json.dumps(metrics))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from napari_pcim.classifier import read_metadata
    from napari_pcim.training.classifier_training import EVAL_SEED, evaluate_classifier

    trained_on = read_metadata(args.out).extra.get("phenotype")
    if trained_on and trained_on != args.phenotype:
        print(
            f"warning: {args.out} was trained on {trained_on!r}; evaluating on "
            f"{args.phenotype!r} (pass --phenotype {trained_on} to match)",
            file=sys.stderr,
        )
    rows = [
        evaluate_classifier(args.out, args.phenotype, n=200 if args.n_train is None else args.n_train, size=size,
                            seed=EVAL_SEED + args.seed, device=args.device)
        for size in (128, 256)
    ]
    for row in rows:
        print(
            f"{Path(row['path']).name}  {row['phenotype']}  {row['size']}x{row['size']}  "
            f"n={row['n']}  seed={row['seed']}  accuracy={row['accuracy']:.3f}"
        )
    print(json.dumps(rows))
    return 0


def _train_pixelcam(args: argparse.Namespace) -> int:
    from napari_pcim.training.pixelcam_training import PixelCAMConfig, train_and_export_pixelcam

    config = PixelCAMConfig(phenotype=args.phenotype, seed=args.seed)
    if args.n_train is not None:
        config.n_train = args.n_train
    if args.epochs is not None:
        config.epochs_stage1 = config.epochs_stage2 = args.epochs
    with console_progress("pixelcam epochs", unit="epoch") as progress:
        result = train_and_export_pixelcam(args.out, config, plate=args.plate, device=args.device,
                                           progress=progress)
    print(f"pixelcam: wrote {result['path']} ({result['size_bytes'] / 1e6:.2f} MB) from "
          f"{result['n_train']} training fields in {result['seconds']:.0f} s", file=sys.stderr)
    return 0


def _evaluate_pixelcam(args: argparse.Namespace) -> int:
    from napari_pcim.training.pixelcam_training import evaluate_pixelcam

    rows = evaluate_pixelcam(args.out)
    print("| condition | n | accuracy PixelCAM | accuracy plain classifier | PxAP | best IoU | best Dice |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['condition']} | {r['n']} | {r['accuracy_pixelcam']:.3f} | {r['accuracy_plain']:.3f} "
              f"| {r['pxap']:.3f} | {r['best_iou']:.3f} | {r['best_dice']:.3f} |")
    return 0


if __name__ == "__main__":
    from napari_pcim.cli.main import main

    sys.exit(main(["train", *sys.argv[1:]]))

"""The ``napari-pcim`` console script: the argument parser and dispatch only.

Each subcommand names its handler in :mod:`napari_pcim.cli` as ``"module:function"``
(a function of the parsed ``argparse.Namespace`` that calls the typed core); the
module is imported only when that subcommand runs, and choices that live in heavy
core modules are read lazily (:class:`CoreChoices`), so ``napari-pcim --help``
stays fast and never imports torch or Qt. :func:`main` is the one error boundary
(:mod:`napari_pcim.errors`): user errors become one line and exit status 2, bugs
print their traceback with a request to report them and exit 1, Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from importlib import import_module

from napari_pcim import __version__
from napari_pcim.cli.bench import add_bench_parsers
from napari_pcim.cli.plate_args import add_plate_read_arguments
from napari_pcim.vocabulary import HIT_CLASS, PHENOTYPES


class CoreChoices(Sequence[str]):
    """argparse ``choices`` read from the core on first use (checking a value, printing help).

    Method names live with the explainers, which import torch; reading them lazily keeps
    building the parser (and ``napari-pcim --help``) light. Give the argument a
    ``metavar`` so argparse does not list the choices while the parser is built.
    """

    def __init__(self, load: Callable[[], Sequence[str]]) -> None:
        self._load = load
        self._items: tuple[str, ...] | None = None

    def _get(self) -> tuple[str, ...]:
        if self._items is None:
            self._items = tuple(self._load())
        return self._items

    def __getitem__(self, index):  # type: ignore[override]
        return self._get()[index]

    def __len__(self) -> int:
        return len(self._get())

    def __contains__(self, value: object) -> bool:
        return value in self._get()


def _explain_methods() -> tuple[str, ...]:
    """The product methods, then the comparison (captum) methods, as the core registers them."""
    from napari_pcim.explainers import COMPARISON_METHODS, METHODS

    return METHODS + COMPARISON_METHODS


def _architectures() -> tuple[str, ...]:
    from napari_pcim.training.architectures import ARCHITECTURES

    return ARCHITECTURES


METHOD_CHOICES = CoreChoices(_explain_methods)
ARCH_CHOICES = CoreChoices(_architectures)


def _add_make_plate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "make-plate",
        help="write a synthetic HCI plate with ground truth",
        description="Write a synthetic high-content-imaging plate (OME-Zarr HCS by default) "
        "with ground-truth labels and a plate-map CSV.",
    )
    p.add_argument("out", help="output path (a .zarr folder, or a folder with --tiff)")
    p.add_argument("--format", dest="plate_format", type=int, choices=(96, 384), default=96)
    p.add_argument("--fields", type=int, default=2, help="fields per well (default 2)")
    p.add_argument("--size", type=int, default=256, help="field size in pixels (default 256)")
    p.add_argument("--phenotype", choices=PHENOTYPES, default="foci")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tiff", action="store_true", help="write per-field TIFFs instead of OME-Zarr")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.set_defaults(handler="napari_pcim.cli.plate:run_make_plate")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a demo classifier and export it as TorchScript",
        description="Train a small CNN on a plate (or on freshly generated fields) and export "
        "TorchScript with its metadata.",
    )
    p.add_argument("--plate", help="plate to train on (default: generate training fields)")
    p.add_argument("--phenotype", choices=PHENOTYPES, default="foci")
    p.add_argument("--arch", choices=ARCH_CHOICES, default="vgg", metavar="ARCH",
                   help="network: %(choices)s (default %(default)s)")
    p.add_argument("--pixelcam", action="store_true", help="train a PixelCAM model (adds localize)")
    p.add_argument("--out", required=True, help="output TorchScript file (.pt)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT (a napari-pcim model)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="training epochs, >= 1 (default: per phenotype)")
    p.add_argument("--n-train", type=int, default=None, help="generated training fields, >= 1")
    p.add_argument("--device", default="auto")
    p.add_argument("--evaluate", action="store_true", help="evaluate OUT on held-out fields instead")
    p.set_defaults(handler="napari_pcim.cli.train:run_train")


def _add_explain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="explain fields of a plate and write annotated images",
        description="Compute attribution maps for wells of a plate and write the channels, the "
        "maps and the ground-truth labels to OME-TIFF or OME-Zarr.",
    )
    p.add_argument("plate", help="plate: OME-Zarr HCS, TIFF folder or a bioio-readable file")
    p.add_argument("--model", required=True, help="TorchScript classifier, or a bundled model name")
    p.add_argument("--method", choices=METHOD_CHOICES, default="pcim", metavar="METHOD",
                   help="attribution method: %(choices)s (default %(default)s)")
    p.add_argument("--wells", help="comma-separated wells, e.g. B03,C05")
    p.add_argument("--all-wells", action="store_true", help="every well of the plate")
    p.add_argument("--fields", default=None,
                   help="comma-separated 0-based fields (default: 0; every field with --all-wells)")
    p.add_argument("--target", default="predicted", help="predicted, all, or a class name")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="options", action="append", default=[], metavar="KEY=VALUE",
                   help="a method option, e.g. --set steps=100 --set baseline=blur (repeatable)")
    p.add_argument("--out", required=True,
                   help="OUT.ome.tif or OUT.ome.zarr; with --all-wells a RESULT.zarr store")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--workers", type=int, default=0, help="local dask workers (--all-wells)")
    p.add_argument("--dask-scheduler", help="address of a dask.distributed scheduler (--all-wells)")
    p.add_argument("--skip-failed", action="store_true",
                   help="record fields that cannot be explained and carry on (whole-plate runs)")
    p.add_argument("--per-channel", action="store_true",
                   help="also compute each field's channel importance and per-channel maps "
                   "(PCIM switches to its pixel-channel variant; ablation methods add one pass per channel)")
    add_plate_read_arguments(p)
    p.set_defaults(handler="napari_pcim.cli.explain:run_explain")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="open napari with the demo plate, model and widgets",
        description="Open napari with the demo plate, the bundled foci classifier and the "
        f"napari-pcim widgets, with the first {HIT_CLASS} well already explained.",
    )
    p.add_argument("--screenshot", help="save a screenshot of the window to FILE and exit")
    p.add_argument("--size", metavar="WxH",
                   help="window size, e.g. 1366x768 (default with --screenshot: 1920x1080)")
    p.add_argument("--doc-pictures", metavar="DIR",
                   help="write every picture of the user guide into DIR (e.g. docs/images) and exit")
    p.add_argument("--phenotype", choices=PHENOTYPES, default="foci")
    p.set_defaults(handler="napari_pcim.cli.main:run_demo")


def build_parser() -> argparse.ArgumentParser:
    """The ``napari-pcim`` parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="napari-pcim",
        description="Pixel attribution maps for high-content-imaging classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"napari-pcim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (_add_demo, _add_make_plate, _add_train, _add_explain):
        add(sub)
    add_bench_parsers(sub, METHOD_CHOICES)
    return parser


def run_demo(args: argparse.Namespace) -> int:
    """``napari-pcim demo``: the demo window, or with ``--doc-pictures DIR`` the user guide's pictures."""
    if args.doc_pictures:
        from napari_pcim._napari.doc_pictures import run_doc_pictures_cli

        return run_doc_pictures_cli(args.doc_pictures)
    from napari_pcim._napari.demo import run_demo_cli

    return run_demo_cli(args)


def _resolve(handler: str) -> Callable[[argparse.Namespace], int]:
    """Import ``"module:function"`` and return the function."""
    module, _, name = handler.partition(":")
    return getattr(import_module(module), name)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the subcommand's handler; returns the exit status."""
    from napari_pcim.errors import bug_report_line, user_message

    args = build_parser().parse_args(argv)
    try:
        return int(_resolve(args.handler)(args) or 0)
    except KeyboardInterrupt:
        print("napari-pcim: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 -- the one boundary: sort user errors from bugs
        message = user_message(exc, getattr(args, "out", None))
        if message is not None:
            print(f"napari-pcim {args.command}: error: {message}", file=sys.stderr)
            return 2
        traceback.print_exc()
        print(f"napari-pcim {args.command}: {bug_report_line()}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

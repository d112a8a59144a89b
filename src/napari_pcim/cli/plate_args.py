"""Command-line options for reading a plate: file-name pattern, z plane, time point, channel map.

``add_plate_read_arguments(parser)`` adds them to a subcommand that opens a plate;
``plate_read_kwargs(args)`` turns the parsed values into keyword arguments of
:func:`napari_pcim.plate_io.open_plate`. The choices (``max``, ``middle``) come from
:data:`napari_pcim.plate_io.planes.Z_CHOICES`; parsing and errors are the core's
(:class:`~napari_pcim.plate_io.planes.PlaneSelection`, :mod:`~napari_pcim.plate_io.channel_map`).
"""

from __future__ import annotations

import argparse
from typing import Any

from napari_pcim.plate_io.channel_map import MAP_SUFFIX, parse_channel_map
from napari_pcim.plate_io.planes import Z_CHOICES, PlaneSelection


def add_plate_read_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--pattern``, ``--z``, ``--timepoint``, ``--channel-map`` and ``--save-channel-map``."""
    g = parser.add_argument_group("reading the plate")
    g.add_argument(
        "--pattern", default=None, metavar="REGEX",
        help="file-name regex for folders of TIFFs, with named groups well (or row and column), "
             "channel and optionally site, z, t",
    )
    g.add_argument(
        "--z", default=None, metavar="PLANE",
        help=f"z stacks: a 0-based plane index or one of {', '.join(Z_CHOICES)} "
             "(default: max, the maximum projection; OME-Zarr: middle)",
    )
    g.add_argument("--timepoint", type=int, default=None, metavar="T",
                   help="time series: the 0-based time point (default 0)")
    g.add_argument(
        "--channel-map", default=None, metavar="MAP",
        help="rename plate channels to the model's: PLATE=MODEL pairs, e.g. w1=DAPI,w2=Actin "
             f"(default: the map saved beside the plate as <plate>{MAP_SUFFIX}, if any)",
    )
    g.add_argument("--save-channel-map", action="store_true",
                   help="save --channel-map beside the plate, for later runs and the GUI")


def plate_read_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``open_plate`` keyword arguments from the parsed options (errors: PlateError, one line).

    ``channel_map`` is a dict when given on the command line, else True (use the saved
    map if there is one). With ``--save-channel-map`` the map is also saved beside
    ``args.plate`` (when the command has a ``plate`` argument).
    """
    sel = PlaneSelection.parse(getattr(args, "z", None), getattr(args, "timepoint", None))
    text = getattr(args, "channel_map", None)
    mapping: dict[str, str] | bool = parse_channel_map(text) if text else True
    if getattr(args, "save_channel_map", False) and isinstance(mapping, dict):
        from napari_pcim.plate_io.channel_map import save_channel_map

        plate = getattr(args, "plate", None)
        if plate:
            save_channel_map(plate, mapping, overwrite=True)
    out: dict[str, Any] = {"channel_map": mapping}
    if getattr(args, "z", None) not in (None, ""):
        out["z"] = sel.z
    if getattr(args, "timepoint", None) is not None:
        out["t"] = sel.t
    if getattr(args, "pattern", None):
        out["pattern"] = args.pattern
    return out

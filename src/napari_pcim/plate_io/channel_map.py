"""Channel maps: which plate channel a model's channel is, suggested, parsed, saved beside the plate.

A channel map is ``{plate channel: model channel}`` (the text form
``"w1=DAPI,w2=Actin"``). :meth:`Plate.with_channel_map` applies it: the plate's
channels then carry the model's names, so classifier channel matching, batch runs and
the GUI work unchanged.

:func:`suggest_channel_map` proposes one for a model's channels: the same name (case
and punctuation ignored), then a known dye or marker of the same colour band
(:data:`DYE_BANDS`: DAPI and Hoechst are blue, GFP, FITC and Alexa 488 green, …), a
wavelength written in the name (``"Em 520"``, ``"ch2 (488)"``), then the plate's
remaining channels in order.

The map is saved as JSON beside the plate, never inside it (instrument folders stay
as the instrument wrote them): ``<parent>/<plate name>.napari-pcim-channels.json``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from napari_pcim.atomic import write_json
from napari_pcim.plate_io.model import PlateError

#: Suffix of the saved channel-map file beside a plate.
MAP_SUFFIX = ".napari-pcim-channels.json"

#: Colour bands by name fragments and the emission range (nm) they cover.
DYE_BANDS: dict[str, tuple[tuple[str, ...], tuple[int, int]]] = {
    "blue": (("dapi", "hoechst", "h33342", "draq", "bfp", "nuc", "405", "uv"), (400, 480)),
    "green": (("gfp", "fitc", "alexa488", "af488", "488", "egfp", "calcein", "syto"), (481, 540)),
    "yellow": (("yfp", "venus", "cy3", "tritc", "phalloidin", "alexa546", "568", "546"), (541, 590)),
    "red": (("rfp", "mcherry", "texasred", "alexa594", "594", "alexa568", "mito"), (591, 650)),
    "farred": (("cy5", "alexa647", "af647", "647", "draq5", "640"), (651, 720)),
    "transmitted": (("brightfield", "bf", "phase", "dic", "tl", "trans"), (0, 0)),
}
#: Model channel names used by napari-pcim's demo models, and their bands.
_ALIASES = {"actin": "yellow", "tubulin": "red", "membrane": "red", "cytoplasm": "yellow"}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def band(name: str) -> str | None:
    """The colour band a channel name suggests (dye, marker or wavelength), or None."""
    n = _norm(name)
    for key, alias in _ALIASES.items():
        if key in n:
            return alias
    for b, (words, _) in DYE_BANDS.items():
        if any(w == n or (len(w) > 2 and w in n) for w in words):
            return b
    for nm in (int(x) for x in re.findall(r"(?<!\d)(\d{3})(?!\d)", name)):
        for b, (_, (lo, hi)) in DYE_BANDS.items():
            if lo <= nm <= hi:
                return b
    return None


def suggest_channel_map(model_channels: Sequence[str], plate_channels: Sequence[str]) -> dict[str, str]:
    """``{model channel: plate channel}``: each model channel's best plate channel, each
    plate channel used once; by name, then colour band, then the plate's order."""
    free = list(plate_channels)
    out: dict[str, str] = {}
    for rule in (
        lambda m, p: _norm(m) == _norm(p),
        lambda m, p: band(m) is not None and band(m) == band(p),
    ):
        for m in model_channels:
            if m in out:
                continue
            hit = next((p for p in free if rule(m, p)), None)
            if hit is not None:
                out[m] = hit
                free.remove(hit)
    for m in model_channels:
        if m not in out and free:
            out[m] = free.pop(0)
    return {m: out[m] for m in model_channels if m in out}


def as_plate_map(model_to_plate: dict[str, str]) -> dict[str, str]:
    """``{model: plate}`` (a suggestion, the widget's rows) -> ``{plate: model}`` (applied)."""
    return {p: m for m, p in model_to_plate.items()}


def parse_channel_map(text: str) -> dict[str, str]:
    """``"w1=DAPI,w2=Actin"`` -> ``{"w1": "DAPI", "w2": "Actin"}``; PlateError if malformed."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        src, eq, dst = part.partition("=")
        if not eq or not src.strip() or not dst.strip():
            raise PlateError(
                f"channel map {text!r}: {part!r} is not PLATE_CHANNEL=MODEL_CHANNEL "
                "(e.g. w1=DAPI,w2=Actin)"
            )
        if src.strip() in out:
            raise PlateError(f"channel map {text!r}: plate channel {src.strip()!r} given twice")
        out[src.strip()] = dst.strip()
    if not out:
        raise PlateError(f"channel map {text!r} is empty (expected e.g. w1=DAPI,w2=Actin)")
    return out


def format_channel_map(mapping: dict[str, str]) -> str:
    """The text form of a map: ``"w1=DAPI,w2=Actin"``."""
    return ",".join(f"{k}={v}" for k, v in mapping.items())


def channel_map_path(plate_path: str | os.PathLike) -> Path:
    """Where a plate's channel map lives: beside the plate, named after it."""
    p = Path(plate_path).expanduser().resolve()
    return p.parent / f"{p.name}{MAP_SUFFIX}"


def save_channel_map(
    plate_path: str | os.PathLike, mapping: dict[str, str], *, overwrite: bool = True
) -> Path:
    """Write ``{plate channel: model channel}`` beside the plate (atomically); its path.

    ``overwrite=False`` refuses to replace an existing map (FileExistsError).
    """
    if not mapping:
        raise PlateError("an empty channel map is not saved")
    out = channel_map_path(plate_path)
    payload = {"plate": Path(plate_path).name, "channel_map": {str(k): str(v) for k, v in mapping.items()}}
    write_json(out, payload, overwrite=overwrite)
    return out


def load_channel_map(plate_path: str | os.PathLike) -> dict[str, str] | None:
    """The channel map saved beside the plate, or None; PlateError if the file is unreadable."""
    f = channel_map_path(plate_path)
    if not f.is_file():
        return None
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
        mapping = data["channel_map"]
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise ValueError("channel_map is not an object of names")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise PlateError(f"{f}: unreadable channel map ({type(e).__name__}: {e})") from None
    return {str(k): v for k, v in mapping.items()}


def check_model_channels(plate_channels: Sequence[str], model_channels: Sequence[str], where: str) -> None:
    """PlateError naming the model channels that no plate channel carries (after mapping)."""
    have = {c.lower() for c in plate_channels}
    missing = [m for m in model_channels if m.lower() not in have]
    if missing:
        raise PlateError(
            f"{where}: the model needs channel(s) {missing} that the plate does not have "
            f"(plate channels: {list(plate_channels)}); map them with --channel-map "
            f"PLATE=MODEL (e.g. {format_channel_map({c: m for c, m in zip(plate_channels, missing)})})"
        )

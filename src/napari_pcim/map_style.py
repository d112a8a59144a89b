"""How attribution maps look: one colormap per method, diverging for signed maps, and one
shared contrast scale per method (part of the layer contract of :mod:`napari_pcim.layers`).

Qt-free and napari-free: colormaps are napari's names or its dict form.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Colormap of each method's (non-negative) attribution maps; other methods get OTHER_COLORMAP.
METHOD_COLORMAPS = {"pcim": "inferno", "rise": "viridis", "pixelcam": "magma"}
OTHER_COLORMAP = "plasma"
#: Signed maps: (below 0, above 0) colours per method, black at 0 (adds nothing when blended).
DIVERGING_COLOURS = {"pcim": ((0.25, 0.6, 1.0), (1.0, 0.55, 0.1)),
                     "rise": ((0.2, 0.85, 0.3), (0.9, 0.25, 0.9))}
#: The shared contrast scale of a method: this percentile of |map| over all its maps so far.
SCALE_PERCENTILE = 99.5
_QUANTILES = np.linspace(0.0, 1.0, 1001)


#: Suffix of the names of napari-pcim's own (diverging) colormaps: ``"pcim_signed"``.
SIGNED_SUFFIX = "_signed"


def is_custom_colormap(name: Any) -> bool:
    """True for a colormap napari-pcim defines itself (exports keep its colours, not its name)."""
    return isinstance(name, str) and name.endswith(SIGNED_SUFFIX)


def diverging_colormap(method: str) -> dict[str, Any]:
    """The colormap (napari's dict form) of a method's signed maps, centred on black."""
    neg, pos = DIVERGING_COLOURS.get(method, ((0.1, 0.75, 0.9), (1.0, 0.8, 0.1)))
    return {"name": f"{method}{SIGNED_SUFFIX}", "display_name": f"signed {method}",
            "colors": [[*neg, 1.0], [0.0, 0.0, 0.0, 1.0], [*pos, 1.0]]}


def is_signed(amap: np.ndarray) -> bool:
    """Whether a map has negative evidence worth showing: a value below −1 % of its largest
    |value| (smaller ones, e.g. PCIM's mass just below the median, would not show anyway)."""
    finite = amap[np.isfinite(amap)]
    return bool(finite.size) and float(finite.min()) < -0.01 * float(np.abs(finite).max())


class ContrastScales:
    """One contrast range per method, shared by all its maps (wells, fields, targets).

    A method's scale is the :data:`SCALE_PERCENTILE` th percentile of |map| pooled over
    every map of that method added so far (each map counts equally, kept as 1001
    quantiles of its finite |values|, so memory stays small). A method is signed once
    any of its maps is (:func:`is_signed`): its limits become (−scale, scale).
    """

    def __init__(self) -> None:
        self._quantiles: dict[str, list[np.ndarray]] = {}
        self._signed: dict[str, bool] = {}

    def add(self, method: str, amap: np.ndarray) -> None:
        """Pool a new map of ``method`` into its scale."""
        finite = np.abs(amap[np.isfinite(amap)])
        if finite.size:
            self._quantiles.setdefault(method, []).append(np.quantile(finite, _QUANTILES))
        self._signed[method] = self._signed.get(method, False) or is_signed(amap)

    def scale(self, method: str) -> float:
        """The shared scale of ``method`` (the maximum if the percentile is 0; 1.0 if all are 0)."""
        pooled = np.concatenate(self._quantiles.get(method) or [np.zeros(1)])
        value = float(np.percentile(pooled, SCALE_PERCENTILE))
        return value if value > 0 else float(pooled.max()) or 1.0

    def style(self, method: str, label: str, signed: bool = False) -> dict[str, Any]:
        """The ``colormap``, ``contrast_limits`` and ``metadata["contrast"]`` of a method's
        layers (``signed``: this layer is signed even if the method's maps are not)."""
        scale, signed = self.scale(method), signed or self._signed.get(method, False)
        n = len(self._quantiles.get(method, ()))
        meaning = f"{SCALE_PERCENTILE}th percentile of |map| over the {n} {label} map(s) so far"
        return {
            "colormap": diverging_colormap(method) if signed
            else METHOD_COLORMAPS.get(method, OTHER_COLORMAP),
            "contrast_limits": (-scale, scale) if signed else (0.0, scale),
            "contrast": {"scale": scale, "signed": signed, "maps": n, "meaning": meaning},
        }


def describe_value(value: float, contrast: dict[str, Any], label: str) -> str:
    """A map value in words, relative to its method's shared scale (``metadata["contrast"]``):
    ``"0.83 of the PCIM scale (99.5th percentile of |map| over 3 map(s); raw 2.01e-06)"``."""
    if not np.isfinite(value):
        return f"{value} (not a finite value)"
    scale = float(contrast.get("scale") or 1.0)
    n = contrast.get("maps", "?")
    return (f"{value / scale:.2f} of the {label} scale ({SCALE_PERCENTILE}th percentile of "
            f"|map| over {n} map(s); raw {value:.3g})")

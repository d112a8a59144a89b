"""BBBC010-like brightfield fields of worms: live (control) worms curve, dead (treated) are rods."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_pcim.synth.imaging import ImagingCondition, illumination, smooth_noise, to_counts


def _worm_centreline(
    rng: np.random.Generator, live: bool, length: float, cy: float, cx: float
) -> np.ndarray:
    """Centreline points (1 px apart) of a worm: sinusoidal if live, a straight rod if dead."""
    s = np.arange(0.0, length, 1.0)
    theta0 = rng.uniform(0, 2 * np.pi)
    if live:
        # Crawling worms carry ~1.2-2 body waves of strong bending along their length.
        amp = rng.uniform(0.8, 1.2)
        wavelength = length * rng.uniform(0.5, 0.8)
        theta = theta0 + amp * np.sin(2 * np.pi * s / wavelength + rng.uniform(0, 2 * np.pi))
    else:
        theta = theta0 + rng.uniform(-0.08, 0.08) * s / length
    ys = np.cumsum(np.sin(theta))
    xs = np.cumsum(np.cos(theta))
    return np.stack([ys - ys.mean() + cy, xs - xs.mean() + cx], axis=1)


def worms_field(
    treated: bool, size: int, rng: np.random.Generator, cond: ImagingCondition, edge: bool
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Simulate a BBBC010-like brightfield field of live (curved) or dead (straight) worms."""
    shape = (size, size)
    s = cond.cell_scale
    n = max(2, int(rng.poisson(3.0 * cond.density * (size / 128) ** 1.5)))
    worms = np.zeros(shape, np.int32)
    thick = np.zeros(shape, np.float32)  # absorbance path length through the worm bodies
    for i in range(1, n + 1):
        length = rng.uniform(70, 110) * s
        width = rng.uniform(3.2, 4.4) * s  # maximum half-width
        cy, cx = rng.uniform(0.15 * size, 0.85 * size, size=2)
        pts = _worm_centreline(rng, not treated, length, cy, cx)
        u = np.linspace(0, 1, len(pts))
        radii = width * np.clip(np.sin(np.pi * u) ** 0.5 * 1.15, 0.25, 1.0)  # tapered ends
        body = np.zeros(shape, np.float32)
        for (py, px), r in zip(pts, radii):
            y0, y1 = max(int(py - r) - 1, 0), min(int(py + r) + 2, size)
            x0, x1 = max(int(px - r) - 1, 0), min(int(px + r) + 2, size)
            if y0 >= y1 or x0 >= x1:
                continue
            yy, xx = np.ogrid[y0:y1, x0:x1]
            prof = np.sqrt(np.clip(1 - ((yy - py) ** 2 + (xx - px) ** 2) / r**2, 0, None)) * r
            np.maximum(body[y0:y1, x0:x1], prof, out=body[y0:y1, x0:x1])
        mask = body > 0
        worms[mask] = i
        thick += body
    gt = (worms > 0).astype(np.uint8)

    # Brightfield: transmission falls with thickness; internal texture (gut granules).
    tex = smooth_noise(rng, shape, 1.5)
    k = cond.intensity_scale
    absorb = np.clip(0.2 * k * thick * (1 + 0.25 * tex), 0, None)
    bf = ndi.gaussian_filter(np.exp(-absorb), 0.8)
    illum = illumination(rng, shape, cond.gradient)
    if edge:
        illum = illum * 0.85 * illumination(rng, shape, 0.3)
    bg = cond.background * (1 + 0.1 * smooth_noise(rng, shape, 20.0))
    # Fluorescence channels: background plus faint autofluorescence, same for both classes.
    auto = ndi.gaussian_filter(gt.astype(np.float32), 1.0) * 0.3 * cond.background
    photons = np.stack(
        [
            bg * 0.6 * illum,
            (bg + auto) * illum,
            (bg * 0.8 + auto) * illum,
            cond.brightfield_level * bf * illum,
        ]
    )
    image = to_counts(rng, photons, cond)
    ids = np.unique(worms)
    lut = np.zeros(n + 1, np.int32)
    lut[ids] = np.arange(len(ids), dtype=np.int32)
    return image, {"gt": gt, "worms": lut[worms]}


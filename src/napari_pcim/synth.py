"""Synthetic high-content-imaging fields and plates with pixel ground truth.

Everything here is numpy/scipy only (no torch, no Qt). Three demo phenotypes:

- ``foci``: responding cells of treated fields carry 3-10 bright punctate GFP foci
  in the cytoplasm; control cells have diffuse GFP. Ground truth ``gt`` = foci pixels.
- ``translocation``: GFP is cytoplasmic in controls and nuclear in responding treated
  cells. Ground truth = the nuclei of translocated cells.
- ``worms``: BBBC010-like brightfield worms; live (control) worms are curved,
  dead (treated) worms are straight rods. Ground truth = worm body pixels.

A field is (4, Y, X) uint16 with channels ``DAPI, Actin, GFP, Brightfield``; labels are
``gt`` (uint8 0/1) plus instance masks ``nuclei``/``cells`` or ``worms`` (int32).
Images are simulated in photon units, then Poisson noise, camera gain, offset and
read noise are applied. See ``docs/data.md`` for the model in words.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

CHANNELS: tuple[str, ...] = ("DAPI", "Actin", "GFP", "Brightfield")
CLASSES: tuple[str, str] = ("control", "treated")
PHENOTYPES: tuple[str, ...] = ("foci", "translocation", "worms")
PIXEL_SIZE_UM = 0.65

# Padding (px, times cell_scale) rendered around a fluorescence field so that cells
# cut by the field border keep their nucleus and a correct Voronoi neighbourhood.
_PAD = 24


@dataclass(frozen=True)
class ImagingCondition:
    """Cell size, staining intensity, background and noise settings of a simulated field.

    ``ImagingCondition()`` is the training condition; :meth:`shifted` returns a
    different acquisition (smaller cells, dimmer stain, brighter background) used for
    out-of-distribution checks.
    """

    cell_scale: float = 1.0  # multiplies nucleus (~8 px) and cell (~20 px) radii
    density: float = 1.0  # multiplies the number of cells (or worms) per field
    intensity_scale: float = 1.0  # multiplies all stain intensities
    background: float = 40.0  # fluorescence background (photons per pixel)
    gradient: float = 0.25  # relative amplitude of the illumination gradient
    brightfield_level: float = 2500.0  # brightfield background (photons per pixel)
    camera_offset: float = 100.0  # counts added by the camera
    gain: float = 1.0  # counts per photon
    read_noise: float = 2.0  # Gaussian read noise (counts, s.d.)
    out_of_focus_fraction: float = 0.15  # fraction of cells rendered blurred
    pixel_size: float = PIXEL_SIZE_UM  # µm per pixel

    @classmethod
    def shifted(cls) -> ImagingCondition:
        """A shifted acquisition: smaller cells, dimmer stain, more background and blur."""
        return cls(
            cell_scale=0.8,
            density=1.3,
            intensity_scale=0.6,
            background=120.0,
            gradient=0.4,
            brightfield_level=1800.0,
            read_noise=4.0,
            out_of_focus_fraction=0.3,
        )


DEFAULT_CONDITION = ImagingCondition()


@dataclass
class SyntheticField:
    """One simulated field: ``image`` (4, H, W) uint16, ``labels`` {name: (H, W)}."""

    image: np.ndarray
    labels: dict[str, np.ndarray]
    treated: bool
    phenotype: str = "foci"
    channel_names: tuple[str, ...] = CHANNELS


@dataclass
class SyntheticBatch:
    """A batch for training: ``images`` (n,4,H,W) uint16, ``labels`` (n,) int64, ``gt`` (n,H,W)."""

    images: np.ndarray
    labels: np.ndarray
    gt: np.ndarray
    phenotype: str = "foci"
    channel_names: tuple[str, ...] = CHANNELS
    classes: tuple[str, str] = field(default=CLASSES)


# --------------------------------------------------------------------------- helpers


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-s.d. spatially correlated noise with correlation length ~``sigma`` px.

    Short lengths: Gaussian-filtered white noise; long ones (> 6 px): a coarse random
    grid upsampled with cubic splines, which is much cheaper than a wide filter.
    """
    if sigma > 6:
        coarse = rng.standard_normal((int(shape[0] / sigma) + 4, int(shape[1] / sigma) + 4))
        n = ndi.zoom(coarse, sigma, order=3)[: shape[0], : shape[1]].astype(np.float32)
    else:
        n = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma, mode="wrap")
    return (n - n.mean()) / (n.std() + 1e-6)


def _illumination(rng: np.random.Generator, shape: tuple[int, int], amplitude: float) -> np.ndarray:
    """Multiplicative illumination: a random linear gradient times a mild vignette (mean ~1)."""
    h, w = shape
    yy = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    xx = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    cy, cx = rng.uniform(-0.3, 0.3, size=2)
    vignette = (xx - cx) ** 2 + (yy - cy) ** 2
    return 1.0 + amplitude * (0.5 * ramp - 0.3 * (vignette - 0.5))


def _blob(
    rng: np.random.Generator, shape: tuple[int, int], cy: float, cx: float, a: float, b: float
) -> tuple[tuple[slice, slice], np.ndarray]:
    """An irregular ellipse (semi-axes a, b px) centred at (cy, cx): (slices, bool patch).

    The boundary radius is modulated by random low-order harmonics so that shapes
    are not perfect ellipses. The patch is clipped to ``shape``.
    """
    r = int(np.ceil(max(a, b) * 1.3)) + 1
    y0, y1 = max(int(cy) - r, 0), min(int(cy) + r + 1, shape[0])
    x0, x1 = max(int(cx) - r, 0), min(int(cx) + r + 1, shape[1])
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    phi = rng.uniform(0, np.pi)
    u = dx * np.cos(phi) + dy * np.sin(phi)
    v = -dx * np.sin(phi) + dy * np.cos(phi)
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    theta = np.arctan2(v, u)
    edge = np.ones_like(theta)
    for k, amp in zip((2, 3, 4, 5), rng.uniform(0, 0.07, size=4)):
        edge += amp * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return (slice(y0, y1), slice(x0, x1)), rho <= edge


def _place_points(
    rng: np.random.Generator, n: int, lo: float, hi: float, min_dist: float
) -> np.ndarray:
    """Up to ``n`` points in the square [lo, hi)² no closer than ``min_dist``.

    Vectorised dart throwing: candidates come in chunks; a candidate survives if it is
    far enough from every accepted point and from every earlier candidate of its chunk.
    """
    d2 = min_dist**2
    pts = np.empty((0, 2))
    for _ in range(12):
        cand = rng.uniform(lo, hi, size=(max(2 * n, 16), 2))
        if len(pts):
            near = ((cand[:, None, :] - pts[None, :, :]) ** 2).sum(-1).min(axis=1) < d2
            cand = cand[~near]
        pair = ((cand[:, None, :] - cand[None, :, :]) ** 2).sum(-1) < d2
        cand = cand[~np.tril(pair, k=-1).any(axis=1)]
        pts = np.concatenate([pts, cand])[:n]
        if len(pts) >= n:
            break
    return pts


def _to_counts(rng: np.random.Generator, photons: np.ndarray, cond: ImagingCondition) -> np.ndarray:
    """Photon image -> uint16 camera counts: shot noise, gain, offset, read noise.

    Shot noise is Poisson; above 30 photons it is drawn from its normal approximation
    N(λ, λ), which is indistinguishable there and several times faster.
    """
    lam = np.clip(photons, 0, None).astype(np.float32)
    shot = lam + np.sqrt(lam) * rng.standard_normal(lam.shape, dtype=np.float32)
    low = lam < 30
    shot[low] = rng.poisson(lam[low])
    counts = cond.gain * shot + cond.camera_offset
    counts += cond.read_noise * rng.standard_normal(lam.shape, dtype=np.float32)
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)


def _label_edges(labels: np.ndarray) -> np.ndarray:
    """Pixels whose 4-neighbourhood contains a different label (cell borders)."""
    e = np.zeros(labels.shape, bool)
    e[1:] |= labels[1:] != labels[:-1]
    e[:-1] |= labels[1:] != labels[:-1]
    e[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    e[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    return e & (labels > 0)


# ------------------------------------------------------------------ fluorescence cells


def _cells_field(
    phenotype: str,
    treated: bool,
    size: int,
    rng: np.random.Generator,
    cond: ImagingCondition,
    edge: bool,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Simulate a fluorescence field of cells (``foci`` or ``translocation``)."""
    s = cond.cell_scale
    pad = int(round(_PAD * s))
    full = size + 2 * pad
    shape = (full, full)
    r_nuc, r_cell = 8.0 * s, 20.0 * s

    # Nucleus centres: dense dart throwing so that neighbouring cells touch.
    n_target = max(3, int(cond.density * 1.15 * full * full / (np.pi * r_cell**2)))
    centres = _place_points(rng, n_target, r_nuc, full - r_nuc, min_dist=1.45 * r_cell)
    n = len(centres)

    # Nuclei: irregular ellipses of diameter ~14-18 px at the default condition.
    nuclei = np.zeros(shape, np.int32)
    for i, (cy, cx) in enumerate(centres, start=1):
        rad = r_nuc * rng.uniform(0.88, 1.12)
        ecc = rng.uniform(0.75, 1.0)
        sl, m = _blob(rng, shape, cy, cx, rad / np.sqrt(ecc), rad * np.sqrt(ecc))
        nuclei[sl][m & (nuclei[sl] == 0)] = i

    # Cytoplasm: nearest nucleus (Voronoi from nucleus edges), limited by a per-cell,
    # irregular thickness so cells touch where crowded and have free edges elsewhere.
    dist, idx = ndi.distance_transform_edt(nuclei == 0, return_indices=True)
    owner = nuclei[idx[0], idx[1]]
    thickness = np.concatenate([[0.0], (r_cell - r_nuc) * rng.uniform(0.8, 1.25, n)])
    wobble = 1.0 + 0.3 * _smooth_noise(rng, shape, 4.0 * s)
    cells = np.where(dist <= thickness[owner] * wobble, owner, 0).astype(np.int32)
    cells[nuclei > 0] = nuclei[nuclei > 0]
    cyto = (cells > 0) & (nuclei == 0)

    # Per-cell stain levels (photons) and out-of-focus flags, indexed by label.
    k = cond.intensity_scale
    nuc_level = np.concatenate([[0.0], k * 900 * rng.lognormal(0, 0.25, n)])
    actin_level = np.concatenate([[0.0], k * 300 * rng.lognormal(0, 0.3, n)])
    gfp_level = np.concatenate([[0.0], k * 250 * rng.lognormal(0, 0.3, n)])
    blurred = np.concatenate([[False], rng.random(n) < cond.out_of_focus_fraction])

    # Responding cells: 60-90 % of cells in a treated field, at least one visible.
    # Foci would vanish in a blurred cell, so only in-focus cells show them.
    responders = np.zeros(n + 1, bool)
    if treated and n:
        responders[1:] = rng.random(n) < rng.uniform(0.6, 0.9)
        if phenotype == "foci":
            responders &= ~blurred
        inside = np.flatnonzero(np.all((centres >= pad) & (centres < pad + size), axis=1)) + 1
        if phenotype == "foci":
            inside = inside[~blurred[inside]]
        if len(inside) and not responders[inside].any():
            responders[rng.choice(inside)] = True

    # Areas per label (in the padded canvas) to conserve total GFP per cell.
    cyto_area = np.bincount(cells[cyto], minlength=n + 1).astype(np.float64)
    nuc_area = np.bincount(nuclei.ravel(), minlength=n + 1).astype(np.float64)
    gt = np.zeros(shape, np.uint8)
    gfp_nuc_ratio = np.full(n + 1, 0.75 if phenotype == "foci" else 0.35)
    foci = np.zeros(shape, np.float32)

    if phenotype == "foci":
        objs = ndi.find_objects(cells)
        for i in np.flatnonzero(responders):
            sl = objs[i - 1]
            if sl is None:
                continue
            # Focus centres: cytoplasm at least 3 px from the nucleus and 2 px inside the cell.
            inner = (
                (cells[sl] == i)
                & (dist[sl] >= 3)
                & (ndi.distance_transform_edt(cells[sl] == i) >= 2.5)
            )
            ys, xs = np.nonzero(inner)
            if not len(ys):
                continue
            n_foci = min(int(rng.integers(3, 11)), len(ys))
            pick = rng.choice(len(ys), n_foci, replace=False)
            total = 0.0
            for y, x in zip(ys[pick] + sl[0].start, xs[pick] + sl[1].start):
                radius = rng.uniform(1.0, 2.0)
                amp = gfp_level[i] * rng.uniform(5.0, 9.0)
                sigma = radius / 1.3
                y0, y1 = max(y - 4, 0), min(y + 5, full)
                x0, x1 = max(x - 4, 0), min(x + 5, full)
                yy, xx = np.mgrid[y0:y1, x0:x1]
                r2 = (yy - y) ** 2 + (xx - x) ** 2
                foci[y0:y1, x0:x1] += amp * np.exp(-r2 / (2 * sigma**2))
                gt[y0:y1, x0:x1] |= (r2 <= radius**2).astype(np.uint8)
                total += amp * 2 * np.pi * sigma**2
            # Keep the cell's total GFP about unchanged: lower its diffuse level.
            before = gfp_level[i] * (cyto_area[i] + gfp_nuc_ratio[i] * nuc_area[i])
            after = max(before - total, 0.25 * before)
            gfp_level[i] = after / (cyto_area[i] + gfp_nuc_ratio[i] * nuc_area[i])
        gt &= cyto.astype(np.uint8)
    else:  # translocation: responders move GFP into the nucleus, total conserved.
        ratio = 3.0
        before = gfp_level * (cyto_area + gfp_nuc_ratio * nuc_area)
        moved = before / np.maximum(cyto_area + ratio * nuc_area, 1.0)
        gfp_level = np.where(responders, moved, gfp_level)
        gfp_nuc_ratio = np.where(responders, ratio, gfp_nuc_ratio)
        gt = (responders[nuclei] & (nuclei > 0)).astype(np.uint8)

    # Channels (photons). Textures: chromatin, actin fibres, cytoplasmic granularity.
    in_nuc = nuclei > 0
    tex_fine = _smooth_noise(rng, shape, 1.2)
    tex_coarse = _smooth_noise(rng, shape, 3.0)
    dapi = np.where(in_nuc, nuc_level[nuclei] * (1 + 0.2 * tex_fine + 0.1 * tex_coarse), 0)
    borders = _label_edges(cells)
    actin = actin_level[cells] * np.where(in_nuc, 0.5, 1.0) * (1 + 0.25 * tex_coarse)
    actin += borders * 1.2 * actin_level[cells]
    gfp_factor = np.where(in_nuc, gfp_nuc_ratio[nuclei], 1.0) * (1 + 0.12 * tex_coarse)
    gfp = gfp_level[cells] * gfp_factor * (cells > 0) + foci
    cellmask = (cells > 0).astype(np.float32)
    bf_dark = 0.05 * cellmask + 0.05 * in_nuc - 0.06 * borders

    # Out-of-focus cells: their contribution is blurred strongly.
    # Filtering runs on the field plus a 12 px margin, enough for the widest blur.
    m = min(pad, 12)
    inner = (slice(pad - m, pad + size + m),) * 2
    oof = blurred[cells[inner]].astype(np.float32)
    any_oof = bool(oof.any())
    chans = []
    for ch in (dapi, actin, gfp, bf_dark):
        ch = np.asarray(ch, np.float32)[inner]
        if any_oof:
            ch = ndi.gaussian_filter(ch * (1 - oof), 0.8) + ndi.gaussian_filter(ch * oof, 3.5)
        else:
            ch = ndi.gaussian_filter(ch, 0.8)
        chans.append(ch[m : m + size, m : m + size])
    crop = (slice(pad, pad + size), slice(pad, pad + size))
    photons = np.stack(chans)

    illum = _illumination(rng, (size, size), cond.gradient)
    if edge:  # edge wells: a dimmer field with a stronger one-sided falloff
        illum = illum * 0.85 * _illumination(rng, (size, size), 0.3)
    bg = cond.background * (1 + 0.1 * _smooth_noise(rng, (size, size), 20.0))
    photons[:3] = (photons[:3] + bg * np.array([0.6, 1.0, 0.8])[:, None, None]) * illum
    photons[3] = cond.brightfield_level * (1.0 - photons[3]) * illum
    image = _to_counts(rng, photons, cond)

    cells_c, nuclei_c = cells[crop], nuclei[crop]
    # Renumber instances consecutively; a cell and its nucleus share an id.
    ids = np.unique(cells_c)
    lut = np.zeros(n + 1, np.int32)
    lut[ids] = np.arange(len(ids), dtype=np.int32)
    labels = {"gt": gt[crop].copy(), "nuclei": lut[nuclei_c], "cells": lut[cells_c]}
    return image, labels


# ----------------------------------------------------------------------------- worms


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


def _worms_field(
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
    tex = _smooth_noise(rng, shape, 1.5)
    k = cond.intensity_scale
    absorb = np.clip(0.2 * k * thick * (1 + 0.25 * tex), 0, None)
    bf = ndi.gaussian_filter(np.exp(-absorb), 0.8)
    illum = _illumination(rng, shape, cond.gradient)
    if edge:
        illum = illum * 0.85 * _illumination(rng, shape, 0.3)
    bg = cond.background * (1 + 0.1 * _smooth_noise(rng, shape, 20.0))
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
    image = _to_counts(rng, photons, cond)
    ids = np.unique(worms)
    lut = np.zeros(n + 1, np.int32)
    lut[ids] = np.arange(len(ids), dtype=np.int32)
    return image, {"gt": gt, "worms": lut[worms]}


# --------------------------------------------------------------------------- public API


def _check_phenotype(phenotype: str) -> None:
    if phenotype not in PHENOTYPES:
        raise ValueError(
            f"unknown phenotype {phenotype!r}; expected one of {', '.join(PHENOTYPES)}"
        )


def generate_field(
    phenotype: str,
    treated: bool,
    *,
    size: int = 256,
    seed: int | None = None,
    rng: np.random.Generator | None = None,
    condition: ImagingCondition | None = None,
    edge: bool = False,
) -> SyntheticField:
    """Simulate one (4, size, size) uint16 field of ``phenotype`` with its ground truth.

    Deterministic for a given ``seed`` (or the state of ``rng``; pass one or neither).
    ``edge=True`` applies the mild intensity edge effect of plate-edge wells.
    """
    _check_phenotype(phenotype)
    if seed is not None and rng is not None:
        raise ValueError("pass either seed or rng, not both")
    if size < 32:
        raise ValueError(f"size must be at least 32 px, got {size}")
    rng = rng if rng is not None else np.random.default_rng(seed)
    cond = condition if condition is not None else DEFAULT_CONDITION
    if phenotype == "worms":
        image, labels = _worms_field(bool(treated), size, rng, cond, edge)
    else:
        image, labels = _cells_field(phenotype, bool(treated), size, rng, cond, edge)
    return SyntheticField(image=image, labels=labels, treated=bool(treated), phenotype=phenotype)


def generate_batch(
    phenotype: str,
    n: int,
    *,
    size: int = 256,
    seed: int = 0,
    positive_fraction: float = 0.5,
    condition: ImagingCondition | None = None,
) -> SyntheticBatch:
    """``n`` independent fields, ``round(n * positive_fraction)`` of them treated (shuffled).

    Field ``i`` is drawn from its own child seed of ``seed``, so batches are reproducible.
    """
    _check_phenotype(phenotype)
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction}")
    ss = np.random.SeedSequence(seed)
    order_rng = np.random.default_rng(ss.spawn(1)[0])
    labels = np.zeros(n, np.int64)
    labels[: int(round(n * positive_fraction))] = 1
    labels = order_rng.permutation(labels)
    images = np.empty((n, len(CHANNELS), size, size), np.uint16)
    gt = np.empty((n, size, size), np.uint8)
    for i, child in enumerate(ss.spawn(n)):
        f = generate_field(
            phenotype,
            bool(labels[i]),
            size=size,
            rng=np.random.default_rng(child),
            condition=condition,
        )
        images[i] = f.image
        gt[i] = f.labels["gt"]
    return SyntheticBatch(images=images, labels=labels, gt=gt, phenotype=phenotype)


# ---------------------------------------------------------------------------- plates

_CHANNEL_COLORS = ("0000FF", "00FF00", "FF00FF", "FFFFFF")  # omero colours, DAPI..Brightfield


def make_plate_map(
    plate_format: int = 96, *, seed: int = 0, hit_fraction: float = 0.3
) -> list[dict[str, object]]:
    """The plate map: rows ``{well, condition, phenotype, edge}`` in plate order.

    First two columns: negative control ``DMSO`` (control); last two: positive control
    ``POS`` (treated); columns between: compounds ``CPD-0001``..., a seeded
    ``hit_fraction`` of which are hits (treated). Outer rows/columns are edge wells.
    """
    from napari_pcim.plate_io import PLATE_FORMATS, well_name

    if plate_format not in (96, 384):
        raise ValueError(f"plate_format must be 96 or 384, got {plate_format}")
    n_rows, n_cols = PLATE_FORMATS[plate_format]
    compound_wells = [(r, c) for r in range(n_rows) for c in range(3, n_cols - 1)]
    rng = np.random.default_rng(np.random.SeedSequence([seed, plate_format, 1]))
    n_hits = int(round(hit_fraction * len(compound_wells)))
    hits = {compound_wells[i] for i in rng.choice(len(compound_wells), n_hits, replace=False)}
    rows: list[dict[str, object]] = []
    k = 0
    for r in range(n_rows):
        for c in range(1, n_cols + 1):
            if c <= 2:
                condition, phen = "DMSO", "control"
            elif c > n_cols - 2:
                condition, phen = "POS", "treated"
            else:
                k += 1
                condition, phen = f"CPD-{k:04d}", ("treated" if (r, c) in hits else "control")
            edge = r in (0, n_rows - 1) or c in (1, n_cols)
            rows.append(
                {"well": well_name(r, c), "condition": condition, "phenotype": phen, "edge": edge}
            )
    return rows


def make_plate(
    out: str | Path,
    *,
    plate_format: int = 96,
    fields: int = 2,
    size: int = 256,
    phenotype: str = "foci",
    seed: int = 0,
    layout: str = "zarr",
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
    condition: ImagingCondition | None = None,
) -> Path:
    """Write a synthetic plate to ``out`` and return its path.

    ``layout="zarr"``: an OME-Zarr HCS plate (NGFF 0.4, zarr format 2) with labels and
    the plate map in ``out/plate_map.csv`` and the plate attributes. ``layout="tiff"``:
    a folder of ImageXpress-style TIFFs ``<plate>_B03_s1_w1.tif`` with ``labels/``, a
    ``.HTD`` and ``plate_map.csv``. The plate is built in a temporary sibling folder and
    renamed into place, so a failure never leaves a partial plate; an existing ``out``
    is refused unless ``overwrite=True``. ``progress(done, total)`` is called per field.
    """
    from napari_pcim.plate_io.plate import (
        PLATE_FORMATS,
        TiffPlateWriter,
        ZarrPlateWriter,
        atomic_directory,
        plate_json_attrs,
        split_well,
        write_plate_map,
    )

    _check_phenotype(phenotype)
    if layout not in ("zarr", "tiff"):
        raise ValueError(f"layout must be 'zarr' or 'tiff', got {layout!r}")
    if fields < 1:
        raise ValueError(f"fields must be >= 1, got {fields}")
    out = Path(out)
    pmap = make_plate_map(plate_format, seed=seed)
    n_rows, n_cols = PLATE_FORMATS[plate_format]
    rows = [chr(65 + i) for i in range(n_rows)]
    columns = list(range(1, n_cols + 1))
    wells = [str(r["well"]) for r in pmap]
    name = out.name.split(".")[0] or "plate"
    cond = condition if condition is not None else DEFAULT_CONDITION
    total = len(wells) * fields

    meta = {
        "phenotype": phenotype,
        "seed": seed,
        "size": size,
        "fields": fields,
        "plate_format": plate_format,
        "channel_names": list(CHANNELS),
        "pixel_size": [cond.pixel_size, cond.pixel_size],
        "condition": dataclasses.asdict(cond),
        "plate_map": pmap,
    }
    with atomic_directory(out, overwrite=overwrite) as tmp:
        if layout == "zarr":
            writer: ZarrPlateWriter | TiffPlateWriter = ZarrPlateWriter(
                tmp,
                name=name,
                rows=rows,
                columns=columns,
                wells=wells,
                n_fields=fields,
                channel_names=CHANNELS,
                pixel_size=cond.pixel_size,
                colors=_CHANNEL_COLORS,
                extra_attrs=plate_json_attrs(**meta),
            )
        else:
            writer = TiffPlateWriter(
                tmp,
                name=name,
                rows=rows,
                columns=columns,
                n_fields=fields,
                channel_names=CHANNELS,
                pixel_size=cond.pixel_size,
                extra_attrs=plate_json_attrs(**meta),
            )
        write_plate_map(tmp / "plate_map.csv", pmap)
        done = 0
        for entry in pmap:
            r, c = split_well(str(entry["well"]))
            for f in range(fields):
                ss = np.random.SeedSequence([seed, plate_format, ord(r) - 65, c, f])
                fld = generate_field(
                    phenotype,
                    entry["phenotype"] == "treated",
                    size=size,
                    rng=np.random.default_rng(ss),
                    condition=cond,
                    edge=bool(entry["edge"]),
                )
                writer.write_field(str(entry["well"]), f, fld.image, fld.labels)
                done += 1
                if progress is not None:
                    progress(done, total)
    return out

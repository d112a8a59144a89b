"""Fluorescence fields of cells: the ``foci`` and ``translocation`` phenotypes.

``foci``: responding cells of treated fields carry 3-10 bright punctate GFP foci in
the cytoplasm; ground truth = foci pixels. ``translocation``: GFP moves from the
cytoplasm into the nucleus of responding treated cells; ground truth = their nuclei.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_pcim.synth.imaging import ImagingCondition, illumination, smooth_noise, to_counts

# Padding (px, times cell_scale) rendered around a fluorescence field so that cells
# cut by the field border keep their nucleus and a correct Voronoi neighbourhood.
_PAD = 24


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



def _label_edges(labels: np.ndarray) -> np.ndarray:
    """Pixels whose 4-neighbourhood contains a different label (cell borders)."""
    e = np.zeros(labels.shape, bool)
    e[1:] |= labels[1:] != labels[:-1]
    e[:-1] |= labels[1:] != labels[:-1]
    e[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    e[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    return e & (labels > 0)



def cells_field(
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
    wobble = 1.0 + 0.3 * smooth_noise(rng, shape, 4.0 * s)
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
    tex_fine = smooth_noise(rng, shape, 1.2)
    tex_coarse = smooth_noise(rng, shape, 3.0)
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

    illum = illumination(rng, (size, size), cond.gradient)
    if edge:  # edge wells: a dimmer field with a stronger one-sided falloff
        illum = illum * 0.85 * illumination(rng, (size, size), 0.3)
    bg = cond.background * (1 + 0.1 * smooth_noise(rng, (size, size), 20.0))
    photons[:3] = (photons[:3] + bg * np.array([0.6, 1.0, 0.8])[:, None, None]) * illum
    photons[3] = cond.brightfield_level * (1.0 - photons[3]) * illum
    image = to_counts(rng, photons, cond)

    cells_c, nuclei_c = cells[crop], nuclei[crop]
    # Renumber instances consecutively; a cell and its nucleus share an id.
    ids = np.unique(cells_c)
    lut = np.zeros(n + 1, np.int32)
    lut[ids] = np.arange(len(ids), dtype=np.int32)
    labels = {"gt": gt[crop].copy(), "nuclei": lut[nuclei_c], "cells": lut[cells_c]}
    return image, labels


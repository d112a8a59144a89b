"""Tests of the synthetic field generator: shapes, determinism and ground-truth consistency."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_pcim import synth


@pytest.mark.parametrize("phenotype", synth.PHENOTYPES)
def test_field_shapes_dtypes_and_label_names(phenotype):
    f = synth.generate_field(phenotype, True, size=96, seed=1)
    assert f.image.shape == (4, 96, 96) and f.image.dtype == np.uint16
    expected = {"gt", "worms"} if phenotype == "worms" else {"gt", "nuclei", "cells"}
    assert set(f.labels) == expected
    assert f.labels["gt"].dtype == np.uint8 and set(np.unique(f.labels["gt"])) <= {0, 1}
    for name in expected - {"gt"}:
        assert f.labels[name].dtype == np.int32 and f.labels[name].shape == (96, 96)
    # Camera offset is present and the image is not saturated.
    assert f.image.min() > 0 and f.image.max() < 65535


@pytest.mark.parametrize("phenotype", synth.PHENOTYPES)
def test_seed_determinism(phenotype):
    a = synth.generate_field(phenotype, True, size=64, seed=7)
    b = synth.generate_field(phenotype, True, size=64, seed=7)
    c = synth.generate_field(phenotype, True, size=64, seed=8)
    assert np.array_equal(a.image, b.image)
    assert all(np.array_equal(a.labels[k], b.labels[k]) for k in a.labels)
    assert not np.array_equal(a.image, c.image)
    r1 = synth.generate_field(phenotype, False, size=64, rng=np.random.default_rng(3))
    r2 = synth.generate_field(phenotype, False, size=64, rng=np.random.default_rng(3))
    assert np.array_equal(r1.image, r2.image)


def test_batch_shapes_balance_and_determinism():
    b1 = synth.generate_batch("foci", 10, size=64, seed=3, positive_fraction=0.3)
    b2 = synth.generate_batch("foci", 10, size=64, seed=3, positive_fraction=0.3)
    assert b1.images.shape == (10, 4, 64, 64) and b1.images.dtype == np.uint16
    assert b1.labels.dtype == np.int64 and b1.labels.sum() == 3
    assert b1.gt.shape == (10, 64, 64) and b1.gt.dtype == np.uint8
    assert np.array_equal(b1.images, b2.images) and np.array_equal(b1.labels, b2.labels)
    # Ground truth only in treated fields, and in every treated field.
    assert b1.gt[b1.labels == 0].sum() == 0
    assert all(b1.gt[i].sum() > 0 for i in np.flatnonzero(b1.labels))


def test_foci_gt_inside_cytoplasm_and_absent_in_controls():
    for seed in range(3):
        t = synth.generate_field("foci", True, size=128, seed=seed)
        gt, nuclei, cells = (t.labels[k] for k in ("gt", "nuclei", "cells"))
        assert gt.sum() > 0
        assert np.all(cells[gt > 0] > 0) and np.all(nuclei[gt > 0] == 0)
        # Foci are small punctate objects (radius 1-2 px, clipped at cell borders).
        sizes = np.bincount(ndi.label(gt)[0].ravel())[1:]
        assert sizes.max() <= 2 * 13
        # Foci are bright in GFP relative to the rest of the cytoplasm.
        gfp = t.image[2].astype(float)
        cyto = (cells > 0) & (nuclei == 0) & (gt == 0)
        assert gfp[gt > 0].mean() > 2 * gfp[cyto].mean()
        c = synth.generate_field("foci", False, size=128, seed=seed)
        assert c.labels["gt"].sum() == 0


def test_foci_total_gfp_not_a_giveaway():
    b = synth.generate_batch("foci", 24, size=96, seed=0)
    totals = b.images[:, 2].astype(float).mean(axis=(1, 2))
    ctrl, treat = totals[b.labels == 0], totals[b.labels == 1]
    # Means of the two classes differ by much less than the spread within a class.
    assert abs(ctrl.mean() - treat.mean()) < 0.5 * np.concatenate([ctrl, treat]).std() + 1e-9


def test_translocation_gt_is_nuclei_with_nuclear_gfp():
    t = synth.generate_field("translocation", True, size=128, seed=2)
    gt, nuclei, cells = (t.labels[k] for k in ("gt", "nuclei", "cells"))
    assert gt.sum() > 0 and np.all(nuclei[gt > 0] > 0)
    gfp = t.image[2].astype(float)
    # Translocated nuclei are brighter than their own cytoplasm; control nuclei darker.
    ids = np.unique(nuclei[gt > 0])
    brighter = [gfp[nuclei == i].mean() > gfp[(cells == i) & (nuclei == 0)].mean() for i in ids]
    assert np.mean(brighter) > 0.8
    c = synth.generate_field("translocation", False, size=128, seed=2)
    assert c.labels["gt"].sum() == 0
    cn, cc = c.labels["nuclei"], c.labels["cells"]
    ids = [i for i in np.unique(cn) if i and ((cc == i) & (cn == 0)).sum() > 50]
    darker = [c.image[2][cn == i].mean() < c.image[2][(cc == i) & (cn == 0)].mean() for i in ids]
    assert np.mean(darker) > 0.8


def test_cell_and_nucleus_sizes_match_default_condition():
    f = synth.generate_field("foci", False, size=256, seed=4)
    nuclei, cells = f.labels["nuclei"], f.labels["cells"]
    # Whole nuclei (away from the border): equivalent diameter ~14-18 px.
    objs = ndi.find_objects(nuclei)
    diam = [
        2 * np.sqrt((nuclei[sl] == i).sum() / np.pi)
        for i, sl in enumerate(objs, start=1)
        if sl is not None and all(s.start > 0 and s.stop < 256 for s in sl)
    ]
    assert 13 <= np.median(diam) <= 19
    # Cells touch: some cell borders are shared with other cells.
    shared = (cells[:, 1:] != cells[:, :-1]) & (cells[:, 1:] > 0) & (cells[:, :-1] > 0)
    assert shared.sum() > 100
    # Every nucleus sits inside its own cell.
    assert np.all(cells[nuclei > 0] == nuclei[nuclei > 0])


def test_worms_live_curved_dead_straight():
    def straightness(field):
        out = []
        for i in np.unique(field.labels["worms"])[1:]:
            ys, xs = np.nonzero(field.labels["worms"] == i)
            if len(ys) < 150:  # mostly outside the field or hidden under another worm
                continue
            ev = np.linalg.eigvalsh(np.cov(np.stack([ys, xs])))
            out.append(ev[0] / ev[1])  # ~0 for a rod, larger for a curved body
        return np.median(out)

    live = [straightness(synth.generate_field("worms", False, size=192, seed=s)) for s in range(3)]
    dead = [straightness(synth.generate_field("worms", True, size=192, seed=s)) for s in range(3)]
    assert max(dead) < min(live)
    f = synth.generate_field("worms", True, size=128, seed=0)
    assert np.array_equal(f.labels["gt"] > 0, f.labels["worms"] > 0)
    # Worms are dark on the brightfield background.
    bf = f.image[3].astype(float)
    assert bf[f.labels["gt"] > 0].mean() < 0.8 * bf[f.labels["gt"] == 0].mean()


def test_shifted_condition_changes_size_and_intensity():
    default = synth.ImagingCondition()
    shifted = synth.ImagingCondition.shifted()
    assert shifted.cell_scale != default.cell_scale and shifted.background != default.background
    a = synth.generate_field("foci", False, size=128, seed=0)
    b = synth.generate_field("foci", False, size=128, seed=0, condition=shifted)
    area = lambda f: np.median(np.bincount(f.labels["nuclei"].ravel())[1:])  # noqa: E731
    assert area(b) < area(a)
    bg = lambda f: np.percentile(f.image[0], 5)  # noqa: E731
    assert bg(b) > bg(a)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown phenotype 'spots'"):
        synth.generate_field("spots", True)
    with pytest.raises(ValueError, match="either seed or rng"):
        synth.generate_field("foci", True, seed=1, rng=np.random.default_rng(1))
    with pytest.raises(ValueError, match="positive_fraction"):
        synth.generate_batch("foci", 2, positive_fraction=1.5)

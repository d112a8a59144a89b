"""Readable maps (Qt-free): one contrast range per method, diverging colormaps for signed
maps, per-channel layer names, cells filled with their share, values in words and the
compare grid's layers."""

from __future__ import annotations

import numpy as np
import pytest

from napari_pcim.cells import cell_table, fill_cells
from napari_pcim.layers import (
    KIND,
    METHOD_COLORMAPS,
    SCALE_PERCENTILE,
    ContrastScales,
    attribution_layer_data,
    cell_share_layer_data,
    compare_grid_data,
    diverging_colormap,
    is_signed,
)
from napari_pcim.map_style import describe_value


def _layer(amap, scales, method="pcim", well="B03", channel=None):
    return attribution_layer_data(
        amap, label=method.upper(), target="treated", well=well, field=0, scale=(1.0, 1.0),
        metadata={"method": method}, scales=scales, channel=channel,
    )[1]


def test_signed_map_gets_symmetric_limits_and_diverging_colormap():
    amap = np.random.default_rng(0).normal(size=(32, 32)).astype(np.float32)
    kw = _layer(amap, ContrastScales(), method="input_x_gradient")
    lo, hi = kw["contrast_limits"]
    assert lo == -hi and hi == pytest.approx(np.percentile(np.abs(amap), SCALE_PERCENTILE), rel=1e-3)
    assert kw["colormap"] == diverging_colormap("input_x_gradient")
    assert kw["colormap"]["colors"][1] == [0.0, 0.0, 0.0, 1.0]  # 0 is black: adds nothing
    assert kw["metadata"]["contrast"]["signed"]


def test_tiny_negatives_do_not_make_a_map_signed():
    amap = np.linspace(-0.001, 1.0, 1024, dtype=np.float32).reshape(32, 32)  # PCIM-like
    assert not is_signed(amap) and is_signed(-amap)
    kw = _layer(amap, ContrastScales())
    assert kw["contrast_limits"][0] == 0.0 and kw["colormap"] == METHOD_COLORMAPS["pcim"]


def test_two_wells_of_one_method_share_one_scale_and_pcim_rise_differ():
    rng = np.random.default_rng(1)
    scales = ContrastScales()
    a = rng.random((32, 32)).astype(np.float32)
    b = 10 * rng.random((32, 32)).astype(np.float32)
    first = _layer(a, scales)
    assert first["contrast_limits"][1] == pytest.approx(np.percentile(a, SCALE_PERCENTILE), rel=1e-3)
    second = _layer(b, scales, well="C05")
    assert second["metadata"]["contrast"]["maps"] == 2
    assert scales.style("pcim", "PCIM")["contrast_limits"] == second["contrast_limits"]
    pooled = np.percentile(np.concatenate([np.quantile(a, np.linspace(0, 1, 1001)),
                                           np.quantile(b, np.linspace(0, 1, 1001))]),
                           SCALE_PERCENTILE)
    assert second["contrast_limits"][1] == pytest.approx(pooled)
    rise = _layer(a, scales, method="rise")
    assert rise["colormap"] != second["colormap"]
    assert rise["contrast_limits"] == first["contrast_limits"]  # RISE has its own scale
    assert diverging_colormap("pcim")["colors"] != diverging_colormap("rise")["colors"]


def test_channel_layers_are_named_by_channel_and_do_not_move_the_scale():
    scales = ContrastScales()
    amap = np.ones((8, 8), np.float32)
    _layer(amap, scales)
    kw = _layer(5 * amap, scales, channel="GFP")
    assert kw["name"] == "PCIM · treated · GFP · B03 f0"
    assert kw["metadata"][KIND] == "attribution_channel" and kw["metadata"]["channel"] == "GFP"
    assert kw["contrast_limits"] == (0.0, 1.0) and kw["metadata"]["contrast"]["maps"] == 1


def test_cells_filled_with_their_share():
    labels = np.zeros((6, 6), np.int32)
    labels[:2, :2], labels[4:, 4:] = 3, 9
    amap = np.zeros((6, 6))
    amap[:2, :2] = 1.0
    amap[4:, 4:] = 3.0
    table = cell_table(amap, labels)
    image = fill_cells(labels, table)
    assert image.dtype == np.float32
    assert (image[:2, :2] == 0.25).all() and (image[4:, 4:] == 0.75).all() and image[3, 3] == 0
    _, kw, kind = cell_share_layer_data(labels, table, name="PCIM · treated · B03 f0",
                                           well="B03", field=0, scale=(1.0, 1.0))
    assert kind == "image" and kw["name"] == "cell share · PCIM · treated · B03 f0"
    assert kw["contrast_limits"] == (0.0, 0.75) and kw["metadata"][KIND] == "cell_share"


def test_value_in_words_is_its_share_of_the_method_scale():
    contrast = {"scale": 4.0, "maps": 3, "signed": False, "meaning": "..."}
    assert describe_value(3.32, contrast, "PCIM") == (
        f"0.83 of the PCIM scale ({SCALE_PERCENTILE}th percentile of |map| over 3 map(s); raw 3.32)")
    assert "not a finite value" in describe_value(float("nan"), contrast, "PCIM")


def test_compare_grid_places_one_labelled_tile_per_well_and_method():
    scales, rng = ContrastScales(), np.random.default_rng(1)
    tiles = []
    for well in ("B03", "C05"):
        for method in ("pcim", "rise"):
            amap = rng.random((20, 10)).astype(np.float32) * (1 if method == "pcim" else 9)
            meta = _layer(amap, scales, method=method, well=well)["metadata"]
            tiles.append((amap, {**meta, "probabilities": {"treated": 0.9}}, (0.5, 1.0)))
    *images, (boxes, kw, kind) = compare_grid_data(tiles, scales, origin=(100.0, 0.0))
    assert kind == "shapes" and len(images) == len(boxes) == 4
    assert kw["features"]["caption"][0] == "B03 · PCIM · treated (p 0.90)"
    tops = {(i[1]["metadata"]["well"], i[1]["metadata"]["method"]): i[1]["translate"] for i in images}
    assert tops["B03", "pcim"] == (100.0, 0.0) and tops["C05", "rise"] == (112.5, 12.5)
    for _, ikw, _ in images:  # one contrast per method, as the method's own layers
        assert ikw["contrast_limits"] == scales.style(ikw["metadata"]["method"], "x")["contrast_limits"]
    with pytest.raises(ValueError, match="one map per well and method"):
        compare_grid_data(tiles[:1] * 2, scales)

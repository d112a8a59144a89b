"""bench speed / bench plate: the reference RISE, the cost-model figures and the plate projection."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from known_answer import X0, Y0, S, SquareMarker
from known_answer import known_answer_field as _field

from napari_pcim.bench import plate, speed


def test_reference_masks_are_the_papers() -> None:
    masks = speed.reference_masks(200, (64, 64), grid=8, p=0.5, seed=1)
    assert masks.shape == (200, 1, 64, 64) and masks.dtype == np.float32
    assert 0 <= masks.min() and masks.max() <= 1 and abs(float(masks.mean()) - 0.5) < 0.05
    assert np.array_equal(masks, speed.reference_masks(200, (64, 64), grid=8, p=0.5, seed=1))


def test_reference_rise_finds_the_known_answer() -> None:
    model = torch.jit.script(SquareMarker(Y0, X0, S))
    sal = speed.reference_rise(model, _field(), 400)[1]
    inside = float(sal[Y0:Y0 + S, X0:X0 + S].mean())
    assert sal.shape == (64, 64) and inside > float(sal.mean())


def test_plate_projection_arithmetic() -> None:
    assert plate.project(0.5, 0.1, 9, 100, 1, start=4.0, load=1.0) == pytest.approx(1 + 100 * 1.4)
    assert plate.project(0.5, 0.1, 9, 100, 4, start=4.0, load=1.0) == pytest.approx(5 + 100 * 1.4 / 4)

    class Meta:
        input_size, field_mode, tile_overlap = (128, 128), "tile", 32

    from napari_pcim.tiling import TilePlan

    n = plate.tiles(Meta, 1080)
    assert n == TilePlan.for_classifier(Meta, (1080, 1080)).n_tiles and n > (1080 // 128) ** 2


def test_measure_reports_every_ratio() -> None:
    result = speed.measure("cpu", n=64, n_fields=1, threads=(1,), repeats=1, pcim_sizes=())
    row = result["threads"]["1"]
    for method in ("rise", "rise_cap", "reference", "pcim"):
        assert set(row[method]) == {"seconds_per_field", "seconds_per_mp", "forward_passes_per_mp",
                                    "over_floor", "over_reference"}
        assert all(np.isfinite(v) and v > 0 for v in row[method].values())
    assert row["reference"]["over_reference"] == 1.0
    assert row["rise_masks_used_mean"] == 64 and row["tuned_batch_size"] >= 1
    text = speed.format_table(result)
    assert "÷ floor" in text and "torch threads 1" in text and "reference" in text
    assert "| reference RISE (eclique/RISE algorithm) |" in speed.format_markdown(result)


def test_cli_speed_flags() -> None:
    from napari_pcim.cli.main import build_parser

    args = build_parser().parse_args(["bench", "speed", "--threads", "1", "--pcim-sizes", "256",
                                      "--repeats", "2"])
    assert (args.threads, args.pcim_sizes, args.repeats) == ([1], [256], 2)


def test_bench_plate_refuses_a_run_with_no_well_left_to_calibrate() -> None:
    with pytest.raises(ValueError, match=r"--wells 96: expected 1 to 95"):
        plate.measure(wells=96)

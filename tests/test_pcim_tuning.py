"""``napari-pcim bench tune pcim``: the variants run on tuning fields through the CLI, and
the read-out grid (starts × noise × start scale × σ) is chosen by the stated rule: within TIE
of the best, fewest starts, then least σ, then least noise, then least start scale."""

from __future__ import annotations

import pytest

from napari_pcim.bench.quality_tuning import GRID_VARIANTS, TIE, choose_grid
from napari_pcim.cli.main import main


def _rows(scores: dict[str, dict[tuple, float]]) -> list[dict]:
    label = {(o["starts"], o["start_noise"], o["smooth"], o["start_scale"]): name
             for name, o in GRID_VARIANTS.items()}
    return [{"model": m, "variant": label[k], "rank mean": v}
            for m, by_variant in scores.items() for k, v in by_variant.items()]


def _options(starts, noise, smooth, scale):
    return {"starts": starts, "start_noise": noise, "start_scale": scale, "smooth": smooth}


def test_choose_grid_takes_the_cheapest_then_least_smoothing_within_the_tie():
    rows = _rows({
        # one start within TIE of the best → one start, and its least σ within TIE
        "shallow": {(1, 0.0, 0.0, 0.0): 0.860, (1, 0.0, 0.5, 0.0): 0.856,
                    (8, 0.25, 0.0, 0.0): 0.865, (16, 0.25, 1.0, 0.0): 0.820,
                    (8, 0.25, 0.0, 2.0): 0.600},
        # random starts clearly better → the fewer starts of those within TIE, then least σ,
        # then least start scale
        "deep": {(1, 0.0, 0.0, 0.0): 0.570, (1, 0.0, 0.5, 0.0): 0.600,
                 (8, 0.25, 0.0, 0.0): 0.650, (16, 0.25, 1.0, 0.0): 0.655,
                 (8, 0.25, 0.0, 2.0): 0.652},
        # smooth starts clearly better → they win although the rule prefers scale 0
        "deeper": {(1, 0.0, 0.0, 0.0): 0.500, (1, 0.0, 0.5, 0.0): 0.500,
                   (8, 0.25, 0.0, 0.0): 0.600, (16, 0.25, 1.0, 0.0): 0.610,
                   (8, 0.25, 0.0, 2.0): 0.700},
    })
    overall, per_model = choose_grid(rows)
    assert per_model == {"shallow": _options(1, 0.0, 0.0, 0.0),
                         "deep": _options(8, 0.25, 0.0, 0.0),
                         "deeper": _options(8, 0.25, 0.0, 2.0)}
    # means: (1,0,0,0) 0.643, (1,0,.5,0) 0.652, (8,.25,0,0) 0.705, (16,.25,1,0) 0.695,
    # (8,.25,0,2) 0.651
    assert overall == _options(8, 0.25, 0.0, 0.0)
    assert TIE == pytest.approx(0.01)


def test_tune_pcim_grid_runs_on_tuning_fields_and_prints_its_choice(capsys):
    assert main(["bench", "tune", "pcim", "--grid", "--fields", "1", "--models", "foci_vgg",
                 "--variants", "starts 1 noise 0 scale 0 σ=0", "starts 8 noise 0.25 scale 2 σ=1"]) == 0
    out = capsys.readouterr().out
    assert out.count("foci_vgg | starts ") == 2
    chosen = out.split("chosen (")[1]
    assert "overall: starts=" in chosen and "foci_vgg: starts=" in chosen


def test_tune_pcim_names_an_unknown_variant_in_one_line(capsys):
    assert main(["bench", "tune", "pcim", "--grid", "--variants", "starts 3 noise 0 σ=0"]) != 0
    err = capsys.readouterr().err
    assert "--variants: unknown ['starts 3 noise 0 σ=0']" in err and "Traceback" not in err

"""The RISE tuning benchmark: one real bundled model, a small cap, its row and table."""

from __future__ import annotations

import io
import json

from napari_pcim.bench import rise_tuning


def test_stopping_row_and_table_on_a_bundled_model() -> None:
    out = io.StringIO()
    rows = rise_tuning.run("stopping", ["foci_resnet18"], 1, 768, {"tolerance": 0.0, "grid": 8},
                           out=out, label="grid=8")
    (row,) = rows
    assert json.loads(out.getvalue()) == row and row["setting"] == "grid=8"
    for tol in rise_tuning.TOLERANCES:
        cell = row[f"tol {tol}"]
        assert cell["masks_mean"] in (512.0, 768.0)  # the one check (512) or the cap
        assert cell["masks_pct"] == round(100 * cell["masks_mean"] / 768, 1)
        assert cell["within_ci"] == (not cell["outside_ci"])
    table = rise_tuning.stopping_table(rows).splitlines()
    assert len(table) == 3 and table[2].startswith("| foci_resnet18 | grid=8 |")


def test_bench_tune_rise_cli_runs_a_stage_and_refuses_a_bad_option(capsys) -> None:
    from napari_pcim.cli.main import main

    assert main(["bench", "tune", "rise", "stopping", "--models", "foci_resnet18", "--fields", "1",
                 "--cap", "512", "--set", "grid=8", "--set", "p=0.5"]) == 0
    out = capsys.readouterr().out.splitlines()
    row = json.loads(out[0])
    assert row["model"] == "foci_resnet18" and row["setting"] == "grid=8 p=0.5" and row["cap"] == 512
    assert out[-1].startswith("| foci_resnet18 | grid=8 p=0.5 |")
    assert main(["bench", "tune", "rise", "stopping", "--set", "grid=x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "grid" in err[0] and "integer" in err[0]

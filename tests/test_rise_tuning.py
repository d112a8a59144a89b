"""The RISE tuning benchmark: one real bundled model, a small cap, its row and table."""

from __future__ import annotations

import argparse
import io
import json

import pytest

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


def test_set_option_is_typed_like_the_default() -> None:
    assert rise_tuning._option("grid=8") == ("grid", 8)
    assert rise_tuning._option("p=0.5") == ("p", 0.5)
    for bad in ("grid", "nope=1", "center=1"):
        with pytest.raises(argparse.ArgumentTypeError, match="KEY=VALUE"):
            rise_tuning._option(bad)

"""kill -9 loop (issue 15): a whole-plate run killed at random points and rerun, ten times,
ends with one CSV row per field, no temp folders and maps identical to an uninterrupted run."""

from __future__ import annotations

import csv
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from napari_pcim import atomic
from napari_pcim.batch import read_field_maps
from napari_pcim.cli.main import main
from napari_pcim.synth import make_plate

# Enough fields that ten kills never run out of work: a write-window kill ends at the
# first field write it sees, a timed kill lets at most a few fields finish.
WELLS = [f"{row}{col:02d}" for row in "BCDE" for col in (3, 4, 5, 6)]


def _argv(plate: Path, out: Path) -> list[str]:
    return ["explain", str(plate), "--model", "foci_vgg", "--method", "pcim", "--wells", ",".join(WELLS),
            "--out", str(out), "--set", "steps=1"]


def _temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if atomic.is_temp_name(p.name)]


def _run_and_kill(argv: list[str], store: Path, rng: random.Random) -> int:
    """Start the CLI; SIGKILL it after a random delay, or as soon as a field's temp folder
    appears (the write window), as the draw picks. Returns the temp entries it left."""
    proc = subprocess.Popen([sys.executable, "-m", "napari_pcim.cli.main", *argv],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        in_write_window = rng.random() < 0.5
        deadline = time.monotonic() + (60.0 if in_write_window else rng.uniform(0.5, 4.0))
        while proc.poll() is None and time.monotonic() < deadline:
            if in_write_window and store.is_dir() and _temps(store):
                break
            time.sleep(0.001 if in_write_window else 0.02)
    finally:
        proc.kill()
        proc.wait()
    return len(_temps(store.parent))


@pytest.mark.slow
def test_kill_9_loop_ends_with_one_row_per_field_no_temps_and_identical_maps(tmp_path):
    plate = make_plate(tmp_path / "plate.zarr", plate_format=96, fields=1, size=128, seed=2)
    store = tmp_path / "R.zarr"
    rng = random.Random(15)
    left = [_run_and_kill(_argv(plate, store), store, rng) for _ in range(10)]
    assert any(left), "no kill landed in a write window: the loop tested nothing"

    finish = subprocess.run([sys.executable, "-m", "napari_pcim.cli.main", *_argv(plate, store)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert finish.returncode == 0, finish.stderr[-2000:]
    assert f"{len(WELLS)}/{len(WELLS)} fields complete" in finish.stdout

    with open(store.with_suffix(".csv"), newline="") as fh:
        rows = [(r["well"], r["field"], r["status"]) for r in csv.DictReader(fh)]
    assert rows == [(w, "0", "done") for w in WELLS]
    assert _temps(tmp_path) == []

    reference = tmp_path / "reference.zarr"
    assert main(_argv(plate, reference)) == 0
    for well in WELLS:
        killed, names, _ = read_field_maps(store, well, 0)
        uninterrupted, ref_names, _ = read_field_maps(reference, well, 0)
        assert names == ref_names
        np.testing.assert_array_equal(killed, uninterrupted)

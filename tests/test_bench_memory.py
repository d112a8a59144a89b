"""``bench memory`` and the bench parsers: counts must be ≥ 1, peaks are measured per fresh process."""

from __future__ import annotations

import argparse

import pytest

from napari_pcim.bench.memory import bounded, measure
from napari_pcim.cli.bench import add_bench_parsers


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napari-pcim")
    add_bench_parsers(parser.add_subparsers(dest="command"), ("pcim", "rise"))
    return parser


@pytest.mark.parametrize("argv,flag", [
    (["bench", "speed", "--n", "0"], "--n"),
    (["bench", "speed", "--fields", "0"], "--fields"),
    (["bench", "plate", "--wells", "-1"], "--wells"),
    (["bench", "memory", "--sizes", "0"], "--sizes"),
], ids=["speed --n 0", "speed --fields 0", "plate --wells -1", "memory --sizes 0"])
def test_bench_count_of_zero_is_refused(capsys, argv, flag):
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(argv)
    assert exc.value.code == 2
    assert f"argument {flag}: expected an integer ≥ 1" in capsys.readouterr().err


def test_bench_parsers_keep_their_defaults():
    args = _parser().parse_args(["bench", "speed"])
    assert (args.n, args.fields, args.handler) == (4000, 2, "napari_pcim.cli.bench:bench_speed")
    args = _parser().parse_args(["bench", "memory", "--sizes", "200", "300"])
    assert args.sizes == [200, 300] and args.handler == "napari_pcim.cli.bench:bench_memory"


def test_bench_memory_measures_each_size_in_a_fresh_process():
    result = measure((160, 320), ("rise",))
    small, large = result["rows"]
    assert (small["size"], large["size"]) == (160, 320)
    assert large["field_mib"] == pytest.approx(4 * small["field_mib"], rel=0.01)
    assert small["peak_rss_mib"] > 50  # a whole interpreter with torch, not a delta
    assert "marginal" in large and result["bounded"] == {"rise": bounded(result["rows"])}


def test_bounded_compares_the_peak_to_field_ratio():
    rows = [{"size": 1, "ratio": 10.0}, {"size": 2, "ratio": 4.0}]
    assert bounded(rows)
    assert not bounded([{"size": 1, "ratio": 4.0}, {"size": 2, "ratio": 10.0}])

"""``bench views``: the scoring it prints (ROC AUC, top-k precision) and its command line."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from napari_pcim.bench.views import DIRECTIONS, format_report, roc_auc, top_k_precision
from napari_pcim.cli.bench_views import add_views_parser


def test_roc_auc_known_answers():
    assert roc_auc([3, 4], [1, 2]) == 1.0
    assert roc_auc([1, 2], [3, 4]) == 0.0
    assert roc_auc([1, 1], [1, 1]) == 0.5  # ties count half
    assert roc_auc([2, 0], [1]) == 0.5
    assert np.isnan(roc_auc([], [1.0]))


def test_top_k_precision_counts_cells_with_foci_among_the_highest_shares():
    table = pd.DataFrame({"label": [7, 3, 9, 1], "share": [0.4, 0.3, 0.2, 0.1]})
    assert top_k_precision(table, {7, 9}, k=2) == (0.5, 0.5)
    assert top_k_precision(table, {7, 3}, k=10) == (0.5, 0.5)  # k larger than the table
    assert np.isnan(top_k_precision(table.iloc[:0], {1})[0])


def test_report_names_every_statistic_with_its_declared_direction():
    figures = {"plate": "/x/demo.zarr", "model": "foci_vgg.pt", "method": "pcim",
               "options": "product defaults", "wells": 4, "hit_wells": 2, "control_wells": 2, "dmso_wells": 2,
               "seconds": 1.0, "channel_importance_hits": {"GFP": 0.6, "DAPI": 0.4},
               "cells": [{"well": "B11", "precision": 0.9, "chance": 0.3}],
               "top10_precision_mean": 0.9, "top10_precision_min": 0.9, "top10_chance_mean": 0.3,
               "hit_vs_control_auc": {k: 0.5 for k in DIRECTIONS},
               "hit_vs_dmso_auc": {k: 0.5 for k in DIRECTIONS}, "outliers": {}}
    text = format_report(figures)
    assert text.index("GFP") < text.index("DAPI")  # largest share first
    for stat in DIRECTIONS:
        assert stat in text
    assert "outlier wells flagged: none" in text


def test_views_parser_refuses_bad_columns():
    parser = argparse.ArgumentParser()
    add_views_parser(parser.add_subparsers(dest="bench"), ["pcim", "rise"])
    assert parser.parse_args(["views", "--columns", "1,12"]).columns == [1, 12]
    with pytest.raises(SystemExit):
        parser.parse_args(["views", "--columns", "a"])

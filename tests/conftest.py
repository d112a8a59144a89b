"""Shared pytest set-up for napari-pcim's tests.

GUI tests use napari's ``make_napari_viewer`` fixture (from napari's pytest plugin)
and run under a virtual X display started by ``make test`` (xvfb-run).
"""

from __future__ import annotations

import os

# Keep torch from oversubscribing the 2-core CI machine when tests run GUI and compute together.
os.environ.setdefault("OMP_NUM_THREADS", "2")

"""``napari-pcim bench ui``: does the viewer stay responsive while an explainer runs?

A real napari viewer with the napari-pcim widgets explains the first treated
well of the demo plate with PCIM and then RISE, through the Explain widget's
thread worker, exactly as a user would. Meanwhile a QTimer ticks every 10 ms in
the GUI thread and records the gaps between ticks: a gap much longer than
10 ms is a stall the user feels. Reported per method: the p95 and the longest
gap (targets: p95 ≤ 50 ms, max ≤ 200 ms), and the compute time in the worker
against the same ``explain()`` call in the main thread (does running in a
thread slow the compute?).

Run it under a display (``xvfb-run -a napari-pcim bench ui``; the CLI handler falls
back to Qt's offscreen platform without one). Figures vary with the machine's load.
It lives on the napari side because it drives a real viewer.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

TICK_MS = 10
TARGET_P95_MS, TARGET_MAX_MS = 50.0, 200.0
#: Options of the benchmarked runs: the explainers' defaults, except fewer RISE masks
#: so that the benchmark stays a few minutes on a 2-core CPU.
RUNS: dict[str, dict[str, Any]] = {"pcim": {}, "rise": {"n_masks": 300}}


def _stall_stats(gaps_ms: list[float]) -> dict[str, float]:
    arr = np.asarray(gaps_ms, dtype=float)
    if arr.size == 0:
        return {"ticks": 0, "p95_ms": float("nan"), "max_ms": float("nan")}
    return {
        "ticks": int(arr.size),
        "p50_ms": float(np.percentile(arr, 50)),
        "p95_ms": float(np.percentile(arr, 95)),
        "max_ms": float(arr.max()),
    }


class _Ticker:
    """Records the gaps between calls of :meth:`tick` (a 10 ms QTimer's timeouts)."""

    def __init__(self) -> None:
        self.gaps_ms: list[float] = []
        self.last = time.perf_counter()

    def tick(self) -> None:
        now = time.perf_counter()
        self.gaps_ms.append((now - self.last) * 1000.0)
        self.last = now


def _wait(app: Any, condition: Any, timeout_s: float, what: str) -> None:
    """Run the Qt event loop until ``condition()`` or fail after ``timeout_s``."""
    end = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > end:
            raise TimeoutError(f"bench ui: timed out after {timeout_s:g} s waiting for {what}")
        app.processEvents()
        time.sleep(0.002)


def targets_met(results: dict[str, Any]) -> bool:
    """Whether every method of a :func:`measure` result met both stall targets."""
    return all(
        r["p95_ms"] <= TARGET_P95_MS and r["max_ms"] <= TARGET_MAX_MS
        for r in results["methods"].values()
    )


def measure(
    plate_path: str | os.PathLike | None = None,
    model_path: str | os.PathLike | None = None,
    runs: dict[str, dict[str, Any]] | None = None,
    timeout_s: float = 900.0,
) -> dict[str, Any]:
    """Open a viewer on ``plate_path`` with ``model_path``; time each run of ``runs``.

    Returns the figures per method and ``"targets_met"`` (see :func:`targets_met`).
    Defaults: the cached foci demo plate, the bundled foci model and :data:`RUNS`.
    """
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_pcim._napari.demo import bundled_model_for, first_treated_well
    from napari_pcim._napari.widgets.session import get_session
    from napari_pcim._napari.widgets.workers import worker_threads
    from napari_pcim.cache import ensure_demo_plate
    from napari_pcim.explainers import explain

    plate_path = plate_path or ensure_demo_plate("foci")
    model_path = model_path or bundled_model_for("foci")
    runs = RUNS if runs is None else runs

    viewer = napari.Viewer(title="napari-pcim bench ui")
    app = QApplication.instance()
    try:
        widgets = {
            n: viewer.window.add_plugin_dock_widget("napari-pcim", n)[1]
            for n in ("Plate", "Model", "Explain")
        }
        session = get_session(viewer)
        widgets["Plate"].open_plate(plate_path)
        if session.plate is None:
            raise ValueError(f"bench ui: cannot open the plate {plate_path}")
        widgets["Model"].load_model(str(model_path))
        _wait(app, lambda: session.classifier is not None, 120, "the model")
        well = first_treated_well(session.plate)
        session.load_well(well, 0)
        _wait(app, lambda: session.well == well, 120, f"well {well}")
        view = session.current_view()
        explain_w = widgets["Explain"]
        import torch

        results: dict[str, Any] = {
            "well": well, "field_shape": list(view.data.shape),
            "model": Path(model_path).name, "torch_threads": torch.get_num_threads(),
            "worker_threads": worker_threads(), "cpu_count": os.cpu_count(), "methods": {},
        }
        for method, options in runs.items():
            # 1. the same call in the main thread (the GUI is frozen meanwhile: reference only)
            t0 = time.perf_counter()
            explain(session.classifier, view.data, method=method, target="predicted",
                    device=session.device, plate_channels=session.plate.channel_names,
                    **options)
            main_s = time.perf_counter() - t0
            app.processEvents()

            # 2. through the Explain widget's thread worker, with a 10 ms ticker in the GUI
            ticker = _Ticker()
            timer = QTimer()
            timer.setInterval(TICK_MS)
            timer.timeout.connect(ticker.tick)
            explain_w.set_method(method)
            if options:
                explain_w.form().set_values(**options)
            t0 = ticker.last = time.perf_counter()
            timer.start()
            if explain_w.run() is None:
                raise RuntimeError(f"bench ui: could not start {method}: {explain_w.status.text()}")
            _wait(app, lambda: explain_w.worker is None, timeout_s, method)
            worker_s = time.perf_counter() - t0
            timer.stop()
            results["methods"][method] = {
                "options": options,
                "main_thread_s": main_s,
                "worker_s": worker_s,
                "worker_over_main": worker_s / main_s if main_s > 0 else float("nan"),
                **_stall_stats(ticker.gaps_ms),
            }
        results["targets_met"] = targets_met(results)
        return results
    finally:
        viewer.close()


def format_table(results: dict[str, Any]) -> str:
    """A :func:`measure` result as a text table, one row per method, with a verdict each."""
    lines = [
        (
            f"bench ui: well {results['well']} {tuple(results['field_shape'])}, model "
            f"{results['model']}, torch threads {results['torch_threads']} (worker "
            f"{results['worker_threads'] or 'same'}), {results['cpu_count']} CPU(s); "
            f"targets p95 ≤ {TARGET_P95_MS:g} ms, max ≤ {TARGET_MAX_MS:g} ms"
        ),
        (
            f"{'method':8} {'main s':>8} {'worker s':>9} {'ratio':>6} {'p50 ms':>7} "
            f"{'p95 ms':>7} {'max ms':>7}  verdict"
        ),
    ]
    for method, r in results["methods"].items():
        ok = r["p95_ms"] <= TARGET_P95_MS and r["max_ms"] <= TARGET_MAX_MS
        lines.append(
            f"{method:8} {r['main_thread_s']:8.2f} {r['worker_s']:9.2f} "
            f"{r['worker_over_main']:6.2f} {r['p50_ms']:7.1f} {r['p95_ms']:7.1f} "
            f"{r['max_ms']:7.1f}  {'ok' if ok else 'MISSED'}"
        )
    return "\n".join(lines)

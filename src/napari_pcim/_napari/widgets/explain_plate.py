"""The Explain widget's "Whole plate" group: explain every field of many wells into a store.

"Explain plate" runs the headless whole-plate path (:func:`napari_pcim.batch.run_plate`,
handed the session's open plate and loaded classifier) over all wells, or the current
and pinned ones, in a thread worker, with the method, target, seed and options of the
Explain widget (:meth:`ExplainWidget.current_options`). It writes a resumable OME-Zarr
result store: the chosen folder, else one in the user cache dir named after the plate,
the method and a hash of the job, so rerunning the same job resumes it. "skip fields
that fail" records a field that cannot be read or explained, with its reason, and carries
on (the status names how many failed and the first reason); unchecked, the first such
field stops the run with an error notification. Afterwards the
store's records give each well's prediction and the share of attribution inside the
ground truth, which the Plate widget colours the well map by; clicking a well shows
its stored maps.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from napari_pcim._napari.widgets.qt import ProgressRelay
from napari_pcim._napari.widgets.workers import explain_plate

if TYPE_CHECKING:
    from napari_pcim._napari.widgets.explain import ExplainWidget
    from napari_pcim.batch import BatchJob, BatchReport


class PlatePanel(QGroupBox):
    """Scope, store and button of a whole-plate run; see the module docstring."""

    def __init__(self, owner: ExplainWidget) -> None:
        super().__init__("Whole plate")
        self.owner = owner
        self.session = owner.session
        self.scope_box = QComboBox()
        self.scope_box.addItems(["all wells", "current + pinned wells"])
        self.plate_btn = QPushButton("Explain plate")
        self.plate_btn.setToolTip(
            "Explain every field of the wells into a result store (a rerun of the same job "
            "resumes it); the well map can then be coloured by prediction or by attribution "
            "inside the ground truth, and clicking a well shows its stored maps"
        )
        self.store_edit = QLineEdit()
        self.store_edit.setPlaceholderText("result store: automatic, in the cache dir")
        self.store_edit.setToolTip("Folder of the OME-Zarr result store (RESULT.zarr); empty: "
                                   "one per plate, method and options in the user cache dir")
        self.skip_box = QCheckBox("skip fields that fail")
        self.skip_box.setToolTip("Record a field that cannot be read or explained, with its "
                                 "reason, and carry on; a rerun retries it")
        self.store_btn = QPushButton("…")
        self.store_btn.setToolTip("Choose where the result store goes")
        plate_row = QHBoxLayout()
        plate_row.addWidget(self.scope_box, 1)
        plate_row.addWidget(self.plate_btn)
        store_row = QHBoxLayout()
        store_row.addWidget(self.store_edit, 1)
        store_row.addWidget(self.store_btn)
        box = QVBoxLayout(self)
        box.addLayout(plate_row)
        box.addLayout(store_row)
        box.addWidget(self.skip_box)
        self.plate_btn.clicked.connect(lambda: self.explain_plate())
        self.store_btn.clicked.connect(self._ask_store)

    def plate_wells(self) -> list[str]:
        """The wells of the chosen scope: all, or the current and pinned ones."""
        s = self.session
        if s.plate is None:
            return []
        if self.scope_box.currentIndex() == 0:
            return list(s.plate.wells)
        chosen = [*s.pinned, *([s.well] if s.well else [])]
        return [w for w in s.plate.wells if w in chosen]

    def _ask_store(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Result store (OME-Zarr folder)", self.store_edit.text(), "OME-Zarr (*.zarr)"
        )
        if path:
            self.store_edit.setText(path if path.endswith(".zarr") else f"{path}.zarr")

    def plate_job(self, wells: list[str]) -> BatchJob:
        """The whole-plate job of the current plate, model, method, target, seed and options."""
        from napari_pcim.batch import BatchJob, reading_of

        s, w = self.session, self.owner
        if s.plate is None or s.classifier is None:
            raise ValueError("open a plate and load a model before explaining the plate")
        options = w.current_options()
        if "regions" in options:
            raise ValueError(
                "label regions are per field: choose grid or slic segmentation for a plate run"
            )
        return BatchJob(
            plate=str(s.plate.path), model=str(s.classifier.path), method=w.method,
            target=w.target, seed=w.seed_box.value(), device=s.device, options=options,
            wells=list(wells), reading=reading_of(s.plate),
        )

    def store_path(self, job: BatchJob) -> Path:
        """Where ``job`` writes: the chosen folder, else one per plate/method/job in the cache."""
        from napari_pcim.batch.job import plate_identity
        from napari_pcim.cache import cache_dir

        chosen = self.store_edit.text().strip()
        if chosen:
            return Path(chosen).expanduser()
        s = self.session
        assert s.classifier is not None and s.plate is not None
        # The same plate and job always get the same store (so a rerun resumes it); another
        # plate, model, target, seed or options get another one instead of a mismatch error.
        key = job.fingerprint(s.classifier.sha256, plate_identity(s.plate))[:10]
        return cache_dir() / "results" / f"{Path(job.plate).stem}-{job.method}-{key}.zarr"

    def explain_plate(self, wells: list[str] | None = None) -> Any:
        """Explain every field of ``wells`` into a result store in a thread worker; returns it.

        The job (plate, model, options) and the store are fixed now: switching plates while
        it runs cannot mix results; a run over a plate no longer open only says where its
        store is. Cancel stops after the field in progress; complete fields stay in the store.
        """
        from napari.qt.threading import create_worker
        from napari.utils import progress

        from napari_pcim.batch import ResultStore
        from napari_pcim.explainers import method_label

        s, w = self.session, self.owner
        if w.worker is not None or s.plate is None or s.classifier is None:
            return None
        wells = self.plate_wells() if wells is None else list(wells)
        if not wells:
            w.error("no wells to explain: pick a well or choose 'all wells'")
            return None
        try:
            job = self.plate_job(wells)
        except ValueError as exc:
            w.error(str(exc))
            return None
        store = self.store_path(job)
        plate = s.plate
        label = f"{method_label(job.method)} · {len(wells)} wells"
        stop = threading.Event()
        pbar = progress(total=0, desc=label)
        worker = create_worker(
            explain_plate, job, store, plate, s.classifier, ProgressRelay(pbar, w.progress), stop.is_set,
            self.skip_box.isChecked(), _start_thread=False, _ignore_errors=True,
        )
        reports: list[BatchReport] = []

        def _finished() -> None:
            w.finished(pbar)
            report = reports[0] if reports else None
            if report is None and not stop.is_set():
                return  # failed: the error is shown already
            if s.plate is not plate or not (store / ".zattrs").exists():
                w.status.setText(f"{label}: results in {store} (the plate changed meanwhile).")
                return
            s.set_results(ResultStore.open(store))
            n = len(s.results.records) if s.results is not None else 0
            if report is None or report.interrupted:
                w.status.setText(f"{label}: cancelled; {n} fields done are kept in {store} "
                                 "(Explain plate again resumes).")
            else:
                w.status.setText(f"{label}: done ({len(report.done)} fields now, "
                                 f"{len(report.skipped)} from an earlier run) in {store}."
                                 + failed_note(report))

        worker.returned.connect(reports.append)
        worker.errored.connect(lambda exc: w.failed(label, exc))
        worker.finished.connect(_finished)
        w.start(worker, stop, f"{label}: running into {store}…")
        return worker


def failed_note(report: BatchReport) -> str:
    """The status's note on failed fields: how many, and the first one's reason ("" if none)."""
    from napari_pcim.vocabulary import field_label

    if not report.failed:
        return ""
    well, field, reason = report.failed[0]
    return (f" {len(report.failed)} field(s) failed (recorded; a rerun retries them), "
            f"first: {field_label(well, field)}: {reason}")

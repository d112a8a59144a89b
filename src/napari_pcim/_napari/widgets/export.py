"""The Export dock widget: save the current well's annotated layers to one file.

The channels, attribution maps and label layers of the current well go to one
OME-TIFF (``.ome.tif``) or OME-Zarr (``.ome.zarr``) through
:func:`napari_pcim.export.write_annotated_field`, the same writer the CLI and the
npe2 writer use; a ``<file name>.metrics.csv`` with the localisation metrics of
each map against the ground truth is written beside it. Existing files (the image
or its CSV) are only replaced after the user confirms (``confirm_overwrite`` is a
plain attribute so tests and scripts can answer without a dialog).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_pcim._napari.widgets.session import get_session
from napari_pcim._napari.writer import default_filename, export_layer_data, export_targets
from napari_pcim.layers import KIND

if TYPE_CHECKING:
    import napari


def ask_overwrite(parent: QWidget | None, paths: list[Path]) -> bool:
    """Ask the user whether the existing ``paths`` may be replaced."""
    listed = "\n".join(str(p) for p in paths)
    answer = QMessageBox.question(
        parent, "Replace files?", f"These files already exist:\n{listed}\nReplace them?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


class ExportWidget(QWidget):
    """Export the current well; see the module docstring."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = get_session(napari_viewer)
        #: ``(existing paths) -> bool``: may they be replaced? Replace for tests/scripts.
        self.confirm_overwrite: Callable[[list[Path]], bool] = lambda p: ask_overwrite(self, p)

        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("…/B03_f0.ome.tif or .ome.zarr")
        self.browse_btn = QPushButton("…")
        self.export_btn = QPushButton("Export current well")
        self.status = QLabel("Channels, attribution maps and labels of the current well go to "
                             "one file, with a metrics CSV beside it.")
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(self.browse_btn)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.export_btn)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.browse_btn.clicked.connect(self._browse)
        self.export_btn.clicked.connect(lambda: self.export())

    def suggested_name(self) -> str:
        """The file name offered for the current field: ``"B03_f0.ome.tif"``, as the CLI's."""
        s = self.session
        return default_filename(s.well, s.field) if s.well is not None else ""

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export annotated field", self.suggested_name(),
            "OME-TIFF (*.ome.tif *.ome.tiff);;OME-Zarr (*.ome.zarr)",
            options=QFileDialog.Option.DontConfirmOverwrite,  # we ask ourselves
        )
        if path:
            self.path_edit.setText(path)

    def export(self, path: str | os.PathLike | None = None) -> list[str]:
        """Export the current well's layers; returns the files written ([] if not)."""
        from napari.utils.notifications import show_error, show_info

        path = Path(path) if path is not None else Path(self.path_edit.text().strip())
        if not str(path) or str(path) == ".":
            self._say("Choose a file name first.")
            return []
        layers = self.session.well_layers()
        if not layers:
            self._say("No well is shown: click a well in the Plate widget first.")
            return []
        layer_data = [
            layer.as_layer_data_tuple() for layer in layers
            if layer.metadata.get(KIND) in ("channel", "labels", "attribution")
        ]
        try:
            existing = [p for p in export_targets(path, layer_data) if p.exists()]
            if existing and not self.confirm_overwrite(existing):
                kept = ", ".join(p.name for p in existing)
                self._say(f"Not exported: {kept} exist(s) and were kept.")
                return []
            written = export_layer_data(path, layer_data, overwrite=bool(existing))
        except (ValueError, OSError) as exc:
            self._say(f"Export failed: {exc}")
            show_error(f"Export failed: {exc}")
            return []
        self._say("Wrote " + ", ".join(Path(p).name for p in written))
        show_info(f"napari-pcim: wrote {written[0]}")
        return written

    def _say(self, text: str) -> None:
        self.status.setText(text)

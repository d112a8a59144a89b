"""Channel-map widget: one dropdown per model channel, listing the plate's channels.

Qt-thin: the suggestion, the saved map, the text form and the renaming are the core's
(:mod:`napari_pcim.plate_io.channel_map`, :meth:`Plate.with_channel_map`). Each
dropdown is prefilled from the map the plate already carries, else the map saved
beside the plate, else by
:func:`~napari_pcim.plate_io.channel_map.suggest_channel_map` (same name, then dye or
wavelength, then the plate's order). "Apply" hands the renamed plate to ``on_apply``
(the Model dock passes ``session.set_plate``); "Save beside plate" writes
``<plate>.napari-pcim-channels.json`` next to the plate, so the Plate dock and the CLI
reuse it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QWidget

from napari_pcim.plate_io.channel_map import (
    as_plate_map,
    load_channel_map,
    save_channel_map,
    suggest_channel_map,
)

if TYPE_CHECKING:
    from napari_pcim.plate_io import Plate


def original_channels(plate: Plate) -> list[str]:
    """The plate's channel names as the instrument wrote them (before a channel map)."""
    back = {new: old for old, new in plate.channel_map.items()}
    return [back.get(c, c) for c in plate.channel_names]


class ChannelMapWidget(QWidget):
    """Map each model channel to a plate channel.

    ``ChannelMapWidget(model_channels, plate, on_apply=None, parent=None)``;
    :meth:`mapping` is ``{plate channel: model channel}``; :meth:`mapped_plate` the plate
    with the model's channel names; :meth:`save` writes the map beside the plate.
    ``mapping_changed`` is emitted with :meth:`mapping` whenever a dropdown changes.
    """

    mapping_changed = Signal(dict)

    def __init__(
        self,
        model_channels: Sequence[str],
        plate: Plate | None = None,
        on_apply: Callable[[Plate], None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._on_apply = on_apply
        self._plate: Plate | None = None
        self._model: list[str] = []
        self.boxes: dict[str, QComboBox] = {}
        self.form = QFormLayout()
        self.apply_btn = QPushButton("Apply")
        self.apply_btn.setToolTip("Give the plate's channels the model's names")
        self.save_btn = QPushButton("Save beside plate")
        self.save_btn.setToolTip("Remember this map: <plate>.napari-pcim-channels.json next to "
                                 "the plate (nothing is written inside the plate)")
        self.status = QLabel()
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.apply_btn)
        buttons.addWidget(self.save_btn)
        outer = QFormLayout(self)
        outer.addRow(self.form)
        outer.addRow(buttons)
        outer.addRow(self.status)
        self.apply_btn.clicked.connect(self.apply)
        self.save_btn.clicked.connect(self.save)
        self.set_channels(model_channels, plate)

    def set_channels(self, model_channels: Sequence[str], plate: Plate | None) -> None:
        """Rebuild the dropdowns for a model and a plate (either may change)."""
        self._model, self._plate = list(model_channels), plate
        while self.form.rowCount():
            self.form.removeRow(0)
        self.boxes = {}
        plate_channels = original_channels(plate) if plate is not None else []
        saved = None
        if plate is not None:
            try:
                saved = load_channel_map(plate.path)
            except ValueError as exc:
                self.status.setText(str(exc))
        applied = plate.channel_map if plate is not None else {}
        chosen = {m: p for p, m in {**(saved or {}), **applied}.items() if p in plate_channels}
        for m, p in suggest_channel_map(self._model, plate_channels).items():
            chosen.setdefault(m, p)
        for m in self._model:
            box = QComboBox()
            box.addItems(plate_channels)
            if m in chosen:
                box.setCurrentText(chosen[m])
            box.currentTextChanged.connect(lambda _t: self.mapping_changed.emit(self.mapping()))
            self.form.addRow(m, box)
            self.boxes[m] = box
        enabled = plate is not None and bool(self._model)
        self.apply_btn.setEnabled(enabled)
        self.save_btn.setEnabled(enabled)
        if saved:
            self.status.setText("Using the channel map saved beside the plate.")

    def mapping(self) -> dict[str, str]:
        """``{plate channel: model channel}`` as the dropdowns show it."""
        return as_plate_map({m: b.currentText() for m, b in self.boxes.items() if b.currentText()})

    def mapped_plate(self) -> Plate:
        """The plate (as the instrument named its channels) renamed by :meth:`mapping`.

        PlateError when a plate channel is chosen for two model channels.
        """
        if self._plate is None:
            raise ValueError("no plate open: open a plate before mapping its channels")
        chosen = [b.currentText() for b in self.boxes.values()]
        twice = sorted({c for c in chosen if chosen.count(c) > 1})
        if twice:
            from napari_pcim.plate_io import PlateError

            raise PlateError(f"plate channel(s) {twice} chosen for more than one model channel")
        base = self._plate
        if base.channel_map:  # start from the instrument's names
            base = base.with_channel_map({new: old for old, new in base.channel_map.items()})
            base.channel_map = {}
        return base.with_channel_map(self.mapping())

    def apply(self) -> Plate | None:
        """Rename the plate's channels and hand the plate to ``on_apply``; errors are shown."""
        try:
            plate = self.mapped_plate()
        except ValueError as exc:
            self.status.setText(str(exc))
            return None
        if self._on_apply is not None:
            self._on_apply(plate)
        self.status.setText(f"Channels: {', '.join(plate.channel_names)}")
        return plate

    def save(self) -> str | None:
        """Save the map beside the plate; the file's path (errors are shown, None)."""
        if self._plate is None:
            return None
        try:
            self.mapped_plate()  # refuse a map that cannot be applied
            out = save_channel_map(self._plate.path, self.mapping(), overwrite=True)
        except (OSError, ValueError) as exc:
            self.status.setText(str(exc))
            return None
        self.status.setText(f"Saved {out.name} beside the plate.")
        return str(out)

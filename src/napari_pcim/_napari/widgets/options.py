"""An editable form for an explainer's options dataclass.

The explainers describe their options as dataclasses whose fields carry a default
and ``metadata["help"]`` (see ``napari_pcim.explainers.pcim.PCIMOptions``). The
form shows the method's main options directly and the rest in a collapsible
"Advanced" section, one editor per field chosen from the field's type: a spin
box for numbers, a dropdown for strings with known choices, a check box for
booleans, a line edit for optional numbers (empty = the method's default).
Fields that are not plain values (e.g. RISE's ``regions`` array) are left out;
the widget fills them from the data when needed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

#: Options shown outside "Advanced", per method.
MAIN_OPTIONS = {
    "pcim": ("steps", "budget", "baseline"),
    "rise": ("n_masks", "grid", "p", "baseline"),
}
#: Known choices of string options.
CHOICES = {
    "baseline": ("median", "zero", "mean", "blur"),
    "readout": ("mass", "mask"),
    "segmentation": ("grid", "labels", "slic"),
}


def _editor(f: dataclasses.Field) -> QWidget | None:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    kind = kind.replace(" ", "")
    default = f.default
    if kind == "bool":
        w = QCheckBox()
        w.setChecked(bool(default))
    elif kind == "int":
        w = QSpinBox()
        w.setRange(0, 10_000_000)
        w.setValue(int(default))
    elif kind == "float":
        w = QDoubleSpinBox()
        w.setDecimals(4)
        w.setRange(0.0, 1e6)
        w.setSingleStep(0.05 if abs(default) <= 1 else 1.0)
        w.setValue(float(default))
    elif kind == "str" and f.name in CHOICES:
        w = QComboBox()
        w.addItems(CHOICES[f.name])
        w.setCurrentText(str(default))
    elif kind in ("float|None", "int|None", "Optional[float]", "Optional[int]"):
        w = QLineEdit("" if default is None else str(default))
        w.setPlaceholderText("default")
    else:
        return None
    w.setToolTip(f.metadata.get("help", ""))
    w.setObjectName(f.name)
    return w


def _value(f: dataclasses.Field, w: QWidget) -> Any:
    if isinstance(w, QCheckBox):
        return w.isChecked()
    if isinstance(w, (QSpinBox, QDoubleSpinBox)):
        return w.value()
    if isinstance(w, QComboBox):
        return w.currentText()
    text = w.text().strip()  # optional number
    if not text:
        return None
    kind = str(f.type).replace(" ", "")
    try:
        return int(text) if kind.startswith("int") or "[int]" in kind else float(text)
    except ValueError:
        raise ValueError(f"option {f.name}: {text!r} is not a number (leave empty for the default)")


class OptionsForm(QWidget):
    """Editors for one options dataclass: main fields, then an "Advanced" collapsible."""

    def __init__(self, method: str, options_cls: type | None, parent: QWidget | None = None):
        super().__init__(parent)
        self.method = method
        self.editors: dict[str, tuple[dataclasses.Field, QWidget]] = {}
        main = QFormLayout()
        advanced_widget = QWidget()
        advanced = QFormLayout(advanced_widget)
        fields = dataclasses.fields(options_cls) if options_cls is not None else ()
        for f in fields:
            editor = _editor(f)
            if editor is None:
                continue
            self.editors[f.name] = (f, editor)
            target = main if f.name in MAIN_OPTIONS.get(method, ()) else advanced
            target.addRow(f.name.replace("_", " "), editor)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(main)
        self.advanced = QCollapsible("Advanced")
        self.advanced.addWidget(advanced_widget)
        layout.addWidget(self.advanced)
        self.advanced.setVisible(advanced.rowCount() > 0)

    def values(self) -> dict[str, Any]:
        """The options as keyword arguments for ``explain()``; ValueError names a bad entry."""
        return {name: _value(f, w) for name, (f, w) in self.editors.items()}

    def set_values(self, **values: Any) -> None:
        """Set editors programmatically (tests, the demo, the benchmark)."""
        for name, value in values.items():
            if name not in self.editors:
                raise KeyError(f"{self.method} has no option {name!r}; options: {list(self.editors)}")
            _, w = self.editors[name]
            if isinstance(w, QCheckBox):
                w.setChecked(bool(value))
            elif isinstance(w, (QSpinBox, QDoubleSpinBox)):
                w.setValue(value)
            elif isinstance(w, QComboBox):
                w.setCurrentText(str(value))
            else:
                w.setText("" if value is None else str(value))

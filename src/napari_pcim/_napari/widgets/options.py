"""An editable form for an explainer's options dataclass, generated from its specs.

Every editor comes from :func:`napari_pcim.explainers.options.option_specs`: a
dropdown of ``spec.choices`` for a ``Literal`` option, a spin box bounded by the
spec's range for a number (an open bound moves in by the box's smallest step), a
check box for a boolean, a line edit for an optional number (empty = the method's
automatic value) or a free string. Options with
``gui=False`` (e.g. RISE's ``regions`` array, filled from the data) get no editor;
``main=True`` options are shown directly, the others in a collapsible "Advanced"
section. Tooltips are the option's help and allowed range. With nothing edited,
:meth:`OptionsForm.values` returns exactly the dataclass defaults, or the loaded model's
recommended options where its metadata has some (:meth:`OptionsForm.recommend`,
:mod:`napari_pcim.explainers.recommended`), which a note under the form names.
"""

from __future__ import annotations

import math
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox, Widget
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget
from superqt import QCollapsible

from napari_pcim.explainers.options import OptionSpec, option_specs, parse_option

INT_MAX = 2**31 - 1  # Qt spin boxes hold 32-bit ints
FLOAT_MAX = 1e12
MIN_DECIMALS, MAX_DECIMALS = 4, 10


def _decimals(value: float) -> int:
    """Enough decimals to show ``value`` exactly (within MAX_DECIMALS)."""
    for n in range(MIN_DECIMALS, MAX_DECIMALS + 1):
        if round(value, n) == value:
            return n
    return MAX_DECIMALS


def _tooltip(spec: OptionSpec) -> str:
    rng = spec.describe_range()
    return f"{spec.help} ({rng})" if spec.help else rng


def make_editor(spec: OptionSpec) -> Widget | None:
    """The magicgui editor of one option (None for options with no editor)."""
    common = {"name": spec.name, "label": spec.name.replace("_", " "), "tooltip": _tooltip(spec)}
    if not spec.gui:
        return None
    if spec.optional or spec.kind == "str":
        return LineEdit(value="" if spec.default is None else str(spec.default), **common)
    if spec.kind == "choice":
        return ComboBox(choices=list(spec.choices), value=spec.default, **common)
    if spec.kind == "bool":
        return CheckBox(value=bool(spec.default), **common)
    if spec.kind == "int":
        lo, hi = -INT_MAX, INT_MAX
        if spec.min is not None:
            lo = math.floor(spec.min) + 1 if spec.min_open else math.ceil(spec.min)
        if spec.max is not None:
            hi = math.ceil(spec.max) - 1 if spec.max_open else math.floor(spec.max)
        return SpinBox(value=int(spec.default), min=lo, max=hi, **common)
    if spec.kind == "float":
        w = FloatSpinBox(**common)
        decimals = _decimals(float(spec.default))
        resolution = 10.0**-decimals
        lo = -FLOAT_MAX if spec.min is None else spec.min + (resolution if spec.min_open else 0.0)
        hi = FLOAT_MAX if spec.max is None else spec.max - (resolution if spec.max_open else 0.0)
        w.native.setDecimals(decimals)
        w.native.setRange(lo, hi)
        w.native.setSingleStep(0.05 if abs(spec.default) <= 1 else 1.0)
        w.native.setValue(float(spec.default))
        return w
    return None


class OptionsForm(QWidget):
    """Editors for one options dataclass: main options, then an "Advanced" collapsible."""

    def __init__(self, method: str, options_cls: type, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.method = method
        self.options_cls = options_cls
        self.specs = {s.name: s for s in option_specs(options_cls)}
        self.editors: dict[str, Widget] = {}
        # Exact values behind float spin boxes, which show a rounded copy (see ``values``).
        self._exact: dict[str, float] = {}
        self.main = Container(labels=True)
        self.advanced_fields = Container(labels=True)
        for spec in self.specs.values():
            editor = make_editor(spec)
            if editor is None:
                continue
            self.editors[spec.name] = editor
            if isinstance(editor, FloatSpinBox):
                self._exact[spec.name] = float(spec.default)
            (self.main if spec.main else self.advanced_fields).append(editor)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.main.native.layout().setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.main.native)
        self.advanced = QCollapsible("Advanced")
        self.advanced.addWidget(self.advanced_fields.native)
        layout.addWidget(self.advanced)
        self.recommended: dict[str, Any] = {}  # editors set from the model's metadata
        self.recommended_note = QLabel()
        self.recommended_note.setWordWrap(True)
        self.recommended_note.setVisible(False)
        layout.addWidget(self.recommended_note)
        self.main.native.setVisible(len(self.main) > 0)
        self.advanced.setVisible(len(self.advanced_fields) > 0)

    def _value(self, name: str) -> Any:
        spec, w = self.specs[name], self.editors[name]
        if isinstance(w, LineEdit):
            return parse_option(spec, w.value)
        if isinstance(w, FloatSpinBox):
            exact = self._exact[name]
            # The box rounds to its decimals: a value it shows as ``exact`` is ``exact``.
            unchanged = abs(w.value - exact) <= 0.5 * 10.0 ** -w.native.decimals()
            return exact if unchanged else float(w.value)
        return w.value

    def values(self) -> dict[str, Any]:
        """The form's options (every option with an editor); ValueError names a bad entry."""
        return {name: self._value(name) for name in self.editors}

    def set_values(self, **values: Any) -> None:
        """Set editors programmatically (tests, the demo, the benchmark)."""
        for name, value in values.items():
            w = self.editors.get(name)
            if w is None:
                raise KeyError(f"{self.method} has no option {name!r} in the form; "
                               f"options: {list(self.editors)}")
            if isinstance(w, LineEdit):
                w.value = "" if value is None else str(value)
            elif isinstance(w, FloatSpinBox):
                self._exact[name] = float(value)
                w.native.setDecimals(max(w.native.decimals(), _decimals(float(value))))
                w.value = float(value)
            else:
                w.value = value

    def recommend(self, values: dict[str, Any]) -> None:
        """Show a model's recommended ``values`` in their editors and name them in a note;
        options the previous model recommended and this one does not go back to their
        defaults, so one model's recommendation never sticks to the next model."""
        for name in set(self.recommended) - set(values):
            self.set_values(**{name: self.specs[name].default})
        self.recommended = {k: v for k, v in values.items() if k in self.editors}
        self.set_values(**self.recommended)
        shown = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.recommended.items())
        self.recommended_note.setText(f"Recommended by this model's metadata: {shown}." if shown else "")
        self.recommended_note.setVisible(bool(shown))


def recommend_for(form: OptionsForm, classifier: Any) -> str:
    """Set ``form`` to ``classifier``'s recommended options (none without a classifier);
    returns "" or the one-line reason the metadata's recommendation is unusable."""
    from napari_pcim.explainers.recommended import recommended_options

    try:
        form.recommend(recommended_options(classifier, form.method) if classifier is not None else {})
    except ValueError as exc:
        form.recommend({})
        return str(exc)
    return ""

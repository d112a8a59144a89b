"""The Explain widget's options come from the option dataclasses, and nowhere else.

In a real napari viewer: for every method the dropdown offers, the untouched form
gives exactly the dataclass defaults (the bug this guards against: a hand-kept
list of readout choices silently replaced PCIM's default readout); every choice
option's dropdown holds exactly the ``Literal``'s choices; a bad value is refused
before a run. Then the demo check: the demo's PCIM map of the first treated well,
run from the widget with its defaults, puts at least half of its positive
attribution inside the ground truth.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("torch")

from magicgui.widgets import ComboBox, FloatSpinBox, LineEdit

from napari_pcim._napari.widgets.explain import offered_methods
from napari_pcim._napari.widgets.options import OptionsForm
from napari_pcim._napari.widgets.session import get_session
from napari_pcim.explainers import COMPARISON_METHODS, METHODS, options_class
from napari_pcim.explainers.options import option_specs
from napari_pcim.layers import KIND
from napari_pcim.training.classifier_training import RECOMMENDED

pytestmark = pytest.mark.gui
WAIT_MS = 300_000


@pytest.fixture
def explain_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-pcim", "Explain")
    return widget


def _gui_defaults(cls: type) -> dict:
    gui = {s.name for s in option_specs(cls) if s.gui}
    return {k: v for k, v in dataclasses.asdict(cls()).items() if k in gui}


def test_dropdown_offers_the_registry_methods(explain_widget):
    box = explain_widget.method_box
    offered = [box.itemData(i) for i in range(box.count())]
    offered = [m for m in offered if m is not None]  # the separator has no data
    assert offered == list(offered_methods()) == [*METHODS, *COMPARISON_METHODS]
    assert {"pcim", "rise", "pixelcam"} <= set(METHODS)
    if importlib.util.find_spec("captum") is not None:
        assert COMPARISON_METHODS


@pytest.mark.parametrize("method", [*METHODS, *COMPARISON_METHODS])
def test_untouched_form_gives_the_dataclass_defaults(explain_widget, method):
    explain_widget.set_method(method)
    assert explain_widget.method == method
    cls = options_class(method)
    options = explain_widget.current_options()
    assert options == _gui_defaults(cls)
    for spec in option_specs(cls):
        if not spec.gui:  # filled from the data, or left to the method's default
            assert options.get(spec.name, spec.default) is spec.default
    form = explain_widget.form()
    for spec in option_specs(cls):
        editor = form.editors.get(spec.name)
        assert (editor is not None) == spec.gui, spec.name
        if editor is None:
            continue
        assert spec.help in editor.tooltip
        in_main = editor in list(form.main)
        assert in_main == spec.main, spec.name
        if spec.kind == "choice":  # a choice added to the Literal shows up, none is invented
            assert isinstance(editor, ComboBox)
            assert tuple(editor.choices) == tuple(spec.choices)


def test_pcim_default_readout_is_the_core_default(explain_widget):
    from napari_pcim.explainers import PCIMOptions

    explain_widget.set_method("pcim")
    assert explain_widget.current_options()["readout"] == PCIMOptions().readout
    assert explain_widget.current_options()["mixing"] == PCIMOptions().mixing


@dataclass
class _Toy:
    kind: Literal["a", "b", "new"] = field(default="b", metadata={"help": "a choice", "main": True})
    third: float = field(default=1 / 3, metadata={"help": "not a round number", "min": 0,
                                                   "min_open": True})
    tiny: float = field(default=1.25e-7, metadata={"help": "small"})
    count: int = field(default=7, metadata={"help": "an int", "min": 1, "max": 9})
    auto: int | None = field(default=None, metadata={"help": "optional"})
    flag: bool = field(default=True, metadata={"help": "a flag"})
    hidden: object = field(default=None, metadata={"help": "data", "gui": False})


def test_form_round_trips_exact_values_and_edits(qtbot):
    form = OptionsForm("toy", _Toy)
    qtbot.addWidget(form)
    assert form.values() == {"kind": "b", "third": 1 / 3, "tiny": 1.25e-7, "count": 7,
                             "auto": None, "flag": True}
    assert form.editors["kind"].choices == ("a", "b", "new")
    assert isinstance(form.editors["third"], FloatSpinBox)
    assert form.editors["third"].native.minimum() > 0  # open bound
    assert (form.editors["count"].min, form.editors["count"].max) == (1, 9)
    assert isinstance(form.editors["auto"], LineEdit)
    form.set_values(kind="new", third=0.25, auto=12, flag=False)
    assert form.values() == {"kind": "new", "third": 0.25, "tiny": 1.25e-7, "count": 7,
                             "auto": 12, "flag": False}
    form.editors["third"].value = 0.5  # as a user would
    form.editors["auto"].value = ""
    assert form.values()["third"] == 0.5 and form.values()["auto"] is None
    form.editors["auto"].value = "many"
    with pytest.raises(ValueError, match="auto"):
        form.values()


def test_bad_value_is_refused_before_a_run(explain_widget):
    explain_widget.set_method("pcim")
    explain_widget.form().set_values(blur_sigma=-1.0)  # optional number: a line edit
    with pytest.raises(ValueError, match="blur_sigma"):
        explain_widget.current_options()
    assert explain_widget.run() is None
    assert "blur_sigma" in explain_widget.status.text()
    assert "\n" not in explain_widget.status.text()


def test_demo_pcim_map_from_the_widget_lies_in_the_ground_truth(make_napari_viewer, qtbot):
    """The demo path with defaults: PCIM on the first treated well of the foci demo plate."""
    from napari_pcim._napari.demo import bundled_model_for, first_treated_well
    from napari_pcim.cache import ensure_demo_plate
    from napari_pcim.metrics import relevance_mass_accuracy

    viewer = make_napari_viewer()
    w = {n: viewer.window.add_plugin_dock_widget("napari-pcim", n)[1]
         for n in ("Plate", "Model", "Explain")}
    session = get_session(viewer)
    assert w["Plate"].open_plate(ensure_demo_plate("foci")) is not None
    w["Model"].load_model(str(bundled_model_for("foci")))
    qtbot.waitUntil(lambda: session.classifier is not None, timeout=WAIT_MS)
    well = first_treated_well(session.plate)
    w["Plate"].select_well(well, 0)
    qtbot.waitUntil(lambda: session.well == well, timeout=WAIT_MS)
    explain = w["Explain"]
    explain.set_method("pcim")
    assert explain.run() is not None, explain.status.text()
    qtbot.waitUntil(lambda: explain.worker is None, timeout=WAIT_MS)
    (layer,) = [la for la in viewer.layers if la.metadata.get(KIND) == "attribution"]
    from napari_pcim.explainers.pcim import PCIMOptions

    assert layer.metadata["options"]["readout"] == PCIMOptions().readout  # the GUI runs the core's default
    gt = next(la for la in viewer.layers if la.metadata.get(KIND) == "labels"
              and la.metadata.get("label") == "gt")
    share = relevance_mass_accuracy(np.asarray(layer.data), np.asarray(gt.data) > 0)
    assert share >= 0.5, f"only {share:.2f} of the PCIM map lies inside the ground truth"


def test_a_models_recommended_options_prefill_the_form_and_leave_with_it(explain_widget):
    """worms_vgg recommends RISE grid 8, p 0.5, tolerance 0.1 and PCIM's read-out: the form shows them (so Run
    passes them), names them in a note, and a model without a recommendation brings the
    defaults back."""
    from napari_pcim.classifier import bundled_model_path, load_classifier

    session = get_session(explain_widget.viewer)
    explain_widget.set_method("rise")
    defaults = _gui_defaults(options_class("rise"))
    session.set_classifier(load_classifier(bundled_model_path("worms_vgg")))
    form = explain_widget.form()
    values = form.values()
    assert (values["grid"], values["p"], values["tolerance"]) == (8, 0.5, 0.1)
    assert {k: v for k, v in values.items() if k not in ("grid", "p", "tolerance")} == {
        k: v for k, v in defaults.items() if k not in ("grid", "p", "tolerance")}
    assert not form.recommended_note.isHidden() and "grid 8" in form.recommended_note.text()
    assert explain_widget.current_options()["grid"] == 8
    # a form built after the model loaded gets the recommendation too (PCIM's read-out)
    assert explain_widget.form("pcim").values() == {**_gui_defaults(options_class("pcim")),
                                                    **RECOMMENDED["worms_vgg"]["pcim"]}

    session.set_classifier(load_classifier(bundled_model_path("foci_vgg")))
    assert form.values() == defaults and form.recommended_note.isHidden()

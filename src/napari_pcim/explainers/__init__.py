"""Explainers: why does a classifier call a field "treated"?

``explain(classifier, fields, method=..., ...) -> Attribution`` is the entry point
(:mod:`.api`). Every method is one registry entry (:mod:`.registry`) living in its
own module: the product methods :data:`METHODS` (PCIM, RISE, PixelCAM, in GUI
order) and the captum methods to compare against, :data:`COMPARISON_METHODS`.
The method cores (:func:`pcim_attribute`, :func:`rise_attribute`,
:func:`pixelcam_attribute`) take a plain forward function, captum-style. Each
method's options are a dataclass (:func:`options_class`) whose fields carry
default, type, choices, range and help (:mod:`.options`). Formulations: docs/methods.md.
"""

# Importing a method's module registers it; this order is the GUI order (product methods first).
from napari_pcim.explainers import pcim, rise, pixelcam_readout, comparison  # noqa: F401, I001
from napari_pcim.explainers.api import explain
from napari_pcim.explainers.attribution import Attribution
from napari_pcim.explainers.pcim import PCIMOptions, pcim_attribute
from napari_pcim.explainers.pixelcam_readout import PixelCAMOptions, pixelcam_attribute
from napari_pcim.explainers.registry import (
    METHOD_LABELS,
    METHOD_OPTIONS,
    Explainer,
    get_explainer,
    method_defaults,
    method_label,
    options_class,
    registered,
    unavailable_reason,
)
from napari_pcim.explainers.rise import RISEOptions, rise_attribute
from napari_pcim.explainers.runtime import Cancelled

#: Product methods, in GUI order.
METHODS: tuple[str, ...] = registered(comparison=False)
#: Captum methods to compare the product methods against.
COMPARISON_METHODS: tuple[str, ...] = registered(comparison=True)

__all__ = [
    "COMPARISON_METHODS",
    "METHODS",
    "METHOD_LABELS",
    "METHOD_OPTIONS",
    "Attribution",
    "Cancelled",
    "Explainer",
    "PCIMOptions",
    "PixelCAMOptions",
    "RISEOptions",
    "explain",
    "get_explainer",
    "method_defaults",
    "method_label",
    "options_class",
    "pcim_attribute",
    "pixelcam_attribute",
    "rise_attribute",
    "unavailable_reason",
]

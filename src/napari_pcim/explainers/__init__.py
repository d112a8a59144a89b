"""Explainers: why does a classifier call a field "treated"?

``explain(classifier, fields, method="pcim"|"rise"|"pixelcam", ...) -> Attribution`` is the
entry point (see :mod:`.api`); the method cores (:func:`pcim_attribute`,
:func:`rise_attribute`) take a plain forward function, captum-style. Each
method's options are a dataclass (:class:`PCIMOptions`, :class:`RISEOptions`)
whose fields carry the defaults and a one-line ``metadata["help"]``;
:data:`METHOD_OPTIONS` maps method names to them. Formulations: docs/methods.md.
"""

from napari_pcim.explainers.api import (
    METHOD_LABELS,
    METHOD_OPTIONS,
    METHODS,
    Attribution,
    Cancelled,
    explain,
    method_defaults,
)
from napari_pcim.explainers.pcim import PCIMOptions, pcim_attribute
from napari_pcim.explainers.pixelcam_readout import PixelCAMOptions, pixelcam_attribute
from napari_pcim.explainers.rise import RISEOptions, rise_attribute

__all__ = [
    "METHODS",
    "METHOD_OPTIONS",
    "METHOD_LABELS",
    "Attribution",
    "Cancelled",
    "PCIMOptions",
    "PixelCAMOptions",
    "RISEOptions",
    "explain",
    "method_defaults",
    "pcim_attribute",
    "pixelcam_attribute",
    "rise_attribute",
]

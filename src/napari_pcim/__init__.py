"""napari-pcim: why does a classifier call a high-content-imaging field a hit?

The public API is loaded lazily so that ``import napari_pcim`` stays light: it
imports neither torch, Qt nor napari.

>>> from napari_pcim import load_classifier, explain, open_plate  # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "explain": "napari_pcim.explainers",
    "Attribution": "napari_pcim.explainers",
    "Cancelled": "napari_pcim.explainers",
    "load_classifier": "napari_pcim.classifier",
    "Classifier": "napari_pcim.classifier",
    "ClassifierError": "napari_pcim.classifier",
    "open_plate": "napari_pcim.plate_io",
    "Plate": "napari_pcim.plate_io",
    "PlateError": "napari_pcim.plate_io",
    "make_plate": "napari_pcim.synth",
    "cell_table": "napari_pcim.cells",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from napari_pcim.cells import cell_table
    from napari_pcim.classifier import Classifier, ClassifierError, load_classifier
    from napari_pcim.explainers import Attribution, Cancelled, explain
    from napari_pcim.plate_io import Plate, PlateError, open_plate
    from napari_pcim.synth import make_plate


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'napari_pcim' has no attribute {name!r}") from None
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

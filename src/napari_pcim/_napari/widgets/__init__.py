"""napari-pcim's dock widgets (the npe2 manifest points at these classes).

- :class:`PlateWidget`: open a plate, click wells, load fields as layers;
- :class:`ModelWidget`: choose and check a TorchScript classifier, predict;
- :class:`ExplainWidget`: PCIM / RISE / PixelCAM maps of a field or a whole plate;
- :class:`CellsWidget`: per-cell attribution of a map over any Labels layer;
- :class:`EvaluateWidget`: localisation metrics of a map against the ground truth;
- :class:`CompareWidget`: chosen wells × methods as a labelled grid of maps;
- :class:`ExportWidget`: write the current well's annotated layers to OME-TIFF/OME-Zarr.

They share one per-viewer :class:`~napari_pcim._napari.widgets.session.Session`, so the
Model widget sees the plate opened in the Plate widget, and so on.
"""

from napari_pcim._napari.widgets.cells import CellsWidget
from napari_pcim._napari.widgets.compare import CompareWidget
from napari_pcim._napari.widgets.evaluate import EvaluateWidget
from napari_pcim._napari.widgets.explain import ExplainWidget
from napari_pcim._napari.widgets.export import ExportWidget
from napari_pcim._napari.widgets.model import ModelWidget
from napari_pcim._napari.widgets.plate import PlateWidget

__all__ = [
    "CellsWidget", "CompareWidget", "EvaluateWidget", "ExplainWidget", "ExportWidget", "ModelWidget", "PlateWidget",
]

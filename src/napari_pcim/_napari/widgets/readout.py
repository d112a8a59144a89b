"""What the viewer says about attribution maps: a colourbar and a value in words.

:func:`install` (called once per viewer by :func:`.session.get_session`) turns on
napari's colourbar overlay for the active attribution layer only, and rewrites the
status bar's value over such a layer from a raw number (``2.01e-06``) into its place on
the method's shared scale (:func:`napari_pcim.map_style.describe_value`), e.g.
``0.83 of the PCIM scale (99.5th percentile of |map| over 3 map(s); raw 2.01e-06)``.
:func:`scale_caption` says in words what the colourbar of a layer spans.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from napari_pcim.layers import KIND
from napari_pcim.map_style import describe_value

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

#: Layer kinds drawn on a method's shared scale (they get the colourbar and the readable value).
SCALED_KINDS = ("attribution", "attribution_channel", "compare_tile")


def _scaled(layer: Any) -> bool:
    meta = getattr(layer, "metadata", None)
    return isinstance(meta, dict) and meta.get(KIND) in SCALED_KINDS and "contrast" in meta


def scale_caption(layer: Layer | None) -> str:
    """``"colour bar of <layer>: 0 to 2.01e-06, 2.01e-06 being the 99.5th percentile of |map|
    over ..."``; "" for a layer not on a shared scale."""
    if not _scaled(layer):
        return ""
    lo, hi = layer.contrast_limits
    meaning = layer.metadata["contrast"].get("meaning", "the method's shared scale")
    return f"colour bar of {layer.name}: {lo:.3g} to {hi:.3g}, {hi:.3g} being the {meaning}"


def show_colorbar(viewer: napari.Viewer, active: Layer | None) -> None:
    """Show the colourbar of ``active`` if it is an attribution layer; hide the others'."""
    for layer in viewer.layers:
        if _scaled(layer):
            layer.colorbar.visible = layer is active


def readable_status(viewer: napari.Viewer, status: Any) -> None:
    """Replace the raw value of a status over the active attribution layer by its words."""
    layer = viewer.layers.selection.active
    if not isinstance(status, dict) or not _scaled(layer) or status.get("layer_name") != layer.name:
        return
    value = layer.get_value(viewer.cursor.position, world=True)
    if value is None:
        return
    meta = layer.metadata
    text = describe_value(float(value), meta["contrast"], str(meta.get("label", meta.get("method"))))
    if status.get("value") != text:
        viewer.status = {**status, "value": text, "coordinates": f"{status.get('coords', '')}: {text}"}


def install(viewer: napari.Viewer) -> None:
    """Connect the colourbar and the readable status to ``viewer`` (once per viewer)."""
    viewer.layers.selection.events.active.connect(lambda event: show_colorbar(viewer, event.value))
    viewer.events.status.connect(lambda event: readable_status(viewer, event.value))

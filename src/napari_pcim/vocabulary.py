"""The project's shared words: demo channels and classes, the hit class, field numbering.

Each of these is defined here and only here; everything else imports it. (Method
names, labels and options live with each explainer and are collected by the
registry in :mod:`napari_pcim.explainers.registry`.)

Field numbering: fields are **0-based everywhere** — in the Python API, the CLI's
``--fields``, layer names (``"B03 f0"``), export file names (``B03_f0``), batch
records and messages. This matches the OME-Zarr HCS layout, where a well's first
field is the image at path ``"0"``. Instrument files that count sites from 1
(ImageXpress ``_s1``, Opera ``f01``) are mapped to 0-based fields when read.
"""

from __future__ import annotations

#: The four channels of the synthetic plates and the bundled models, in order.
DEMO_CHANNELS: tuple[str, ...] = ("DAPI", "Actin", "GFP", "Brightfield")
#: Class names of the demo phenotypes; index 1 is the hit.
DEMO_CLASSES: tuple[str, str] = ("control", "treated")
#: The class that marks a hit (the positive class of the demo plates and models).
HIT_CLASS: str = DEMO_CLASSES[1]
#: The synthetic phenotypes (see :mod:`napari_pcim.synth`).
PHENOTYPES: tuple[str, ...] = ("foci", "translocation", "worms")
#: Pixel size of the synthetic fields, in µm.
PIXEL_SIZE_UM: float = 0.65

#: The number of a well's first field (see the module docstring).
FIRST_FIELD: int = 0


def field_label(well: str, field: int) -> str:
    """How a well's field is named for people: layer names and messages (``"B03 f0"``)."""
    return f"{well} f{int(field)}"


def field_stem(well: str, field: int) -> str:
    """How a well's field is named in file names (``"B03_f0"``)."""
    return f"{well}_f{int(field)}"

"""Synthetic high-content-imaging fields and plates with pixel ground truth.

Everything here is numpy/scipy only (no torch, no Qt). Three demo phenotypes
(:data:`PHENOTYPES`):

- ``foci``: responding cells of treated fields carry 3-10 bright punctate GFP foci
  in the cytoplasm; control cells have diffuse GFP. Ground truth ``gt`` = foci pixels.
- ``translocation``: GFP is cytoplasmic in controls and nuclear in responding treated
  cells. Ground truth = the nuclei of translocated cells.
- ``worms``: BBBC010-like brightfield worms; live (control) worms are curved,
  dead (treated) worms are straight rods. Ground truth = worm body pixels.

A field is (4, Y, X) uint16 with channels ``DAPI, Actin, GFP, Brightfield``; labels are
``gt`` (uint8 0/1) plus instance masks ``nuclei``/``cells`` or ``worms`` (int32).
Images are simulated in photon units, then Poisson noise, camera gain, offset and
read noise are applied. See ``docs/data.md`` for the model in words.

Modules: :mod:`.imaging` (conditions, camera), :mod:`.cells`, :mod:`.worms`,
:mod:`.fields` (``generate_field``, ``generate_batch``), :mod:`.plate` (plates).
"""

from napari_pcim.synth.fields import SyntheticBatch, SyntheticField, generate_batch, generate_field
from napari_pcim.synth.imaging import DEFAULT_CONDITION, ImagingCondition
from napari_pcim.synth.plate import make_plate, make_plate_map
from napari_pcim.vocabulary import DEMO_CHANNELS as CHANNELS
from napari_pcim.vocabulary import DEMO_CLASSES as CLASSES
from napari_pcim.vocabulary import PHENOTYPES, PIXEL_SIZE_UM

__all__ = [
    "CHANNELS",
    "CLASSES",
    "DEFAULT_CONDITION",
    "PHENOTYPES",
    "PIXEL_SIZE_UM",
    "ImagingCondition",
    "SyntheticBatch",
    "SyntheticField",
    "generate_batch",
    "generate_field",
    "make_plate",
    "make_plate_map",
]

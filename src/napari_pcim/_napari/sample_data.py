"""npe2 sample data: one deterministic treated demo field per phenotype, as napari layers.

Each function returns LayerDataTuples built by `napari_pcim.layers.field_layer_data`:
four channel images (``"B03 · DAPI"`` ...), the ground truth (``"B03 · GT foci"``) and the
instance masks. No torch, no Qt; the data are generated in ~0.1 s.
"""

from __future__ import annotations

from napari_pcim.layers import LayerDataTuple, field_layer_data
from napari_pcim.synth import CHANNELS, PIXEL_SIZE_UM, generate_field

SAMPLE_WELL = "B03"
SAMPLE_SEED = 2024
SAMPLE_SIZE = 256


def sample_field_layers(phenotype: str) -> list[LayerDataTuple]:
    """Layers of the demo field of ``phenotype`` (a treated well, so the GT is not empty)."""
    f = generate_field(phenotype, True, size=SAMPLE_SIZE, seed=SAMPLE_SEED)
    return field_layer_data(
        f.image,
        f.labels,
        CHANNELS,
        (PIXEL_SIZE_UM, PIXEL_SIZE_UM),
        SAMPLE_WELL,
        phenotype=phenotype,
        source=f"synthetic:{phenotype}:seed={SAMPLE_SEED}",
    )


def sample_foci() -> list[LayerDataTuple]:
    """Demo field: GFP foci in the cytoplasm of responding cells."""
    return sample_field_layers("foci")


def sample_translocation() -> list[LayerDataTuple]:
    """Demo field: GFP moved from the cytoplasm into the nucleus of responding cells."""
    return sample_field_layers("translocation")


def sample_worms() -> list[LayerDataTuple]:
    """Demo field: dead (straight) C. elegans in brightfield."""
    return sample_field_layers("worms")

"""The captum methods to compare PCIM against, one module each; importing this registers them.

Shared machinery (captum import, channel reduction, tiles in batches) is in
:mod:`napari_pcim.explainers.captum_methods`.
"""

from napari_pcim.explainers.comparison import (  # noqa: F401, I001 - registration order
    saliency,
    input_x_gradient,
    integrated_gradients,
    occlusion,
    feature_ablation,
    gradcam,
)

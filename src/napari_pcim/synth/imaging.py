"""The simulated acquisition: imaging conditions, illumination, smooth noise and the camera.

Shared by the cell (:mod:`.cells`) and worm (:mod:`.worms`) simulators.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_pcim.vocabulary import PIXEL_SIZE_UM


@dataclass(frozen=True)
class ImagingCondition:
    """Cell size, staining intensity, background and noise settings of a simulated field.

    ``ImagingCondition()`` is the training condition; :meth:`shifted` returns a
    different acquisition (smaller cells, dimmer stain, brighter background) used for
    out-of-distribution checks.
    """

    cell_scale: float = 1.0  # multiplies nucleus (~8 px) and cell (~20 px) radii
    density: float = 1.0  # multiplies the number of cells (or worms) per field
    intensity_scale: float = 1.0  # multiplies all stain intensities
    background: float = 40.0  # fluorescence background (photons per pixel)
    gradient: float = 0.25  # relative amplitude of the illumination gradient
    brightfield_level: float = 2500.0  # brightfield background (photons per pixel)
    camera_offset: float = 100.0  # counts added by the camera
    gain: float = 1.0  # counts per photon
    read_noise: float = 2.0  # Gaussian read noise (counts, s.d.)
    out_of_focus_fraction: float = 0.15  # fraction of cells rendered blurred
    pixel_size: float = PIXEL_SIZE_UM  # µm per pixel

    @classmethod
    def shifted(cls) -> ImagingCondition:
        """A shifted acquisition: smaller cells, dimmer stain, more background and blur."""
        return cls(
            cell_scale=0.8,
            density=1.3,
            intensity_scale=0.6,
            background=120.0,
            gradient=0.4,
            brightfield_level=1800.0,
            read_noise=4.0,
            out_of_focus_fraction=0.3,
        )


DEFAULT_CONDITION = ImagingCondition()


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-s.d. spatially correlated noise with correlation length ~``sigma`` px.

    Short lengths: Gaussian-filtered white noise; long ones (> 6 px): a coarse random
    grid upsampled with cubic splines, which is much cheaper than a wide filter.
    """
    if sigma > 6:
        coarse = rng.standard_normal((int(shape[0] / sigma) + 4, int(shape[1] / sigma) + 4))
        n = ndi.zoom(coarse, sigma, order=3)[: shape[0], : shape[1]].astype(np.float32)
    else:
        n = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma, mode="wrap")
    return (n - n.mean()) / (n.std() + 1e-6)


def illumination(rng: np.random.Generator, shape: tuple[int, int], amplitude: float) -> np.ndarray:
    """Multiplicative illumination: a random linear gradient times a mild vignette (mean ~1)."""
    h, w = shape
    yy = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    xx = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    cy, cx = rng.uniform(-0.3, 0.3, size=2)
    vignette = (xx - cx) ** 2 + (yy - cy) ** 2
    return 1.0 + amplitude * (0.5 * ramp - 0.3 * (vignette - 0.5))



def to_counts(rng: np.random.Generator, photons: np.ndarray, cond: ImagingCondition) -> np.ndarray:
    """Photon image -> uint16 camera counts: shot noise, gain, offset, read noise.

    Shot noise is Poisson; above 30 photons it is drawn from its normal approximation
    N(λ, λ), which is indistinguishable there and several times faster.
    """
    lam = np.clip(photons, 0, None).astype(np.float32)
    shot = lam + np.sqrt(lam) * rng.standard_normal(lam.shape, dtype=np.float32)
    low = lam < 30
    shot[low] = rng.poisson(lam[low])
    counts = cond.gain * shot + cond.camera_offset
    counts += cond.read_noise * rng.standard_normal(lam.shape, dtype=np.float32)
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)


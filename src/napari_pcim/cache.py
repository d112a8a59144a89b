"""napari-pcim's cache folder and the demo plate generated once into it (Qt-free).

``$NAPARI_PCIM_CACHE`` or the user cache dir holds the demo plates (see
:func:`ensure_demo_plate`) and the GUI's whole-plate result stores.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

#: Size of the demo plate: a 96-well plate, 2 fields per well, 256 px fields.
DEMO_FORMAT, DEMO_FIELDS, DEMO_SIZE, DEMO_SEED = 96, 2, 256, 0
#: Bumped when the demo plate's content changes so old caches are not reused.
DEMO_VERSION = 1


def cache_dir() -> Path:
    """napari-pcim's cache folder: ``$NAPARI_PCIM_CACHE`` or the user cache dir."""
    env = os.environ.get("NAPARI_PCIM_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("napari-pcim"))


def demo_plate_path(phenotype: str = "foci") -> Path:
    """The cached demo plate of ``phenotype`` (it may not exist yet)."""
    name = f"demo-{phenotype}-{DEMO_FORMAT}-f{DEMO_FIELDS}-{DEMO_SIZE}px-v{DEMO_VERSION}.zarr"
    return cache_dir() / name


def ensure_demo_plate(
    phenotype: str = "foci", progress: Callable[[int, int], None] | None = None
) -> Path:
    """Return the demo plate of ``phenotype``, generating it first if the cache lacks it.

    ``make_plate`` builds the plate in a temporary folder and renames it into
    place, so an interrupted run never leaves a half-written plate behind.
    """
    from napari_pcim.synth import make_plate

    path = demo_plate_path(phenotype)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        make_plate(
            path, plate_format=DEMO_FORMAT, fields=DEMO_FIELDS, size=DEMO_SIZE,
            phenotype=phenotype, seed=DEMO_SEED, layout="zarr", progress=progress,
        )
    except FileExistsError:
        pass  # another process generated it meanwhile
    return path

"""Synthetic plates: the demo plate map and whole plates written as OME-Zarr or TIFFs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from napari_pcim.atomic import atomic_directory
from napari_pcim.plate_io.plate_map import PLATE_MAP_NAME, write_plate_map
from napari_pcim.plate_io.wells import PLATE_FORMATS, plate_grid, row_index, split_well, well_name
from napari_pcim.synth.fields import check_phenotype, generate_field
from napari_pcim.synth.imaging import DEFAULT_CONDITION, ImagingCondition
from napari_pcim.vocabulary import DEMO_CHANNELS, DEMO_CLASSES, HIT_CLASS

_CHANNEL_COLORS = ("0000FF", "00FF00", "FF00FF", "FFFFFF")  # omero colours, DAPI..Brightfield


def make_plate_map(
    plate_format: int = 96, *, seed: int = 0, hit_fraction: float = 0.3
) -> list[dict[str, object]]:
    """The plate map: rows ``{well, condition, phenotype, edge}`` in plate order.

    First two columns: negative control ``DMSO`` (control); last two: positive control
    ``POS`` (treated); columns between: compounds ``CPD-0001``..., a seeded
    ``hit_fraction`` of which are hits (treated). Outer rows/columns are edge wells.
    """
    if plate_format not in (96, 384):
        raise ValueError(f"plate_format must be 96 or 384, got {plate_format}")
    n_rows, n_cols = PLATE_FORMATS[plate_format]
    compound_wells = [(r, c) for r in range(n_rows) for c in range(3, n_cols - 1)]
    rng = np.random.default_rng(np.random.SeedSequence([seed, plate_format, 1]))
    n_hits = int(round(hit_fraction * len(compound_wells)))
    hits = {compound_wells[i] for i in rng.choice(len(compound_wells), n_hits, replace=False)}
    rows: list[dict[str, object]] = []
    k = 0
    for r in range(n_rows):
        for c in range(1, n_cols + 1):
            if c <= 2:
                condition, phen = "DMSO", DEMO_CLASSES[0]
            elif c > n_cols - 2:
                condition, phen = "POS", HIT_CLASS
            else:
                k += 1
                condition, phen = f"CPD-{k:04d}", (HIT_CLASS if (r, c) in hits else DEMO_CLASSES[0])
            edge = r in (0, n_rows - 1) or c in (1, n_cols)
            rows.append(
                {"well": well_name(r, c), "condition": condition, "phenotype": phen, "edge": edge}
            )
    return rows


def make_plate(
    out: str | Path,
    *,
    plate_format: int = 96,
    fields: int = 2,
    size: int = 256,
    phenotype: str = "foci",
    seed: int = 0,
    layout: str = "zarr",
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
    condition: ImagingCondition | None = None,
) -> Path:
    """Write a synthetic plate to ``out`` and return its path.

    ``layout="zarr"``: an OME-Zarr HCS plate (NGFF 0.4, zarr format 2) with labels and
    the plate map in ``out/plate_map.csv`` and the plate attributes. ``layout="tiff"``:
    a folder of ImageXpress-style TIFFs ``<plate>_B03_s1_w1.tif`` with ``labels/``, a
    ``.HTD`` and ``plate_map.csv``. The plate is built in a temporary sibling folder and
    renamed into place, so a failure never leaves a partial plate; an existing ``out``
    is refused unless ``overwrite=True``. ``progress(done, total)`` is called per field.
    """
    from napari_pcim.plate_io.writers import TiffPlateWriter, ZarrPlateWriter, plate_json_attrs

    check_phenotype(phenotype)
    if layout not in ("zarr", "tiff"):
        raise ValueError(f"layout must be 'zarr' or 'tiff', got {layout!r}")
    if fields < 1:
        raise ValueError(f"fields must be >= 1, got {fields}")
    out = Path(out)
    pmap = make_plate_map(plate_format, seed=seed)
    rows, columns = plate_grid(plate_format)
    wells = [str(r["well"]) for r in pmap]
    name = out.name.split(".")[0] or "plate"
    cond = condition if condition is not None else DEFAULT_CONDITION
    total = len(wells) * fields

    meta = {
        "phenotype": phenotype,
        "seed": seed,
        "size": size,
        "fields": fields,
        "plate_format": plate_format,
        "channel_names": list(DEMO_CHANNELS),
        "pixel_size": [cond.pixel_size, cond.pixel_size],
        "condition": dataclasses.asdict(cond),
        "plate_map": pmap,
    }
    with atomic_directory(out, overwrite=overwrite) as tmp:
        if layout == "zarr":
            writer: ZarrPlateWriter | TiffPlateWriter = ZarrPlateWriter(
                tmp,
                name=name,
                rows=rows,
                columns=columns,
                wells=wells,
                n_fields=fields,
                channel_names=DEMO_CHANNELS,
                pixel_size=cond.pixel_size,
                colors=_CHANNEL_COLORS,
                extra_attrs=plate_json_attrs(**meta),
            )
        else:
            writer = TiffPlateWriter(
                tmp,
                name=name,
                rows=rows,
                columns=columns,
                n_fields=fields,
                channel_names=DEMO_CHANNELS,
                pixel_size=cond.pixel_size,
                extra_attrs=plate_json_attrs(**meta),
            )
        write_plate_map(tmp / PLATE_MAP_NAME, pmap)
        done = 0
        for entry in pmap:
            r, c = split_well(str(entry["well"]))
            for f in range(fields):
                ss = np.random.SeedSequence([seed, plate_format, row_index(r), c, f])
                fld = generate_field(
                    phenotype,
                    entry["phenotype"] == HIT_CLASS,
                    size=size,
                    rng=np.random.default_rng(ss),
                    condition=cond,
                    edge=bool(entry["edge"]),
                )
                writer.write_field(str(entry["well"]), f, fld.image, fld.labels)
                done += 1
                if progress is not None:
                    progress(done, total)
    return out

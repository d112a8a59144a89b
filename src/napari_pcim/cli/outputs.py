"""Never clobber: what an ``--out`` may be, checked before any work starts.

:func:`check_out` refuses an output that is, contains or lies inside one of the
command's inputs; an existing output without ``--overwrite``; and, with
``--overwrite``, anything that is not a file or folder of the kind this tool writes
(:func:`is_ours` looks at its napari-pcim metadata). So ``--overwrite`` can replace an
earlier model, export or plate, and never an unrelated file or folder. (Result stores
are resumed, never replaced: :func:`napari_pcim.batch.open_store` checks them.)
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

Kind = Literal["model", "export", "plate"]

_WHAT = {"model": "napari-pcim model (TorchScript with napari-pcim metadata)",
         "export": "napari-pcim export (.ome.tif/.ome.zarr with napari-pcim metadata)",
         "plate": "napari-pcim plate (written by make-plate)"}


def _zattrs_has_ours(folder: Path) -> bool:
    try:
        return "napari_pcim" in json.loads((folder / ".zattrs").read_text())
    except (OSError, ValueError):
        return False


def _model_is_ours(path: Path) -> bool:
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/extra/napari_pcim.json") for name in archive.namelist())


def _export_is_ours(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith((".ome.tif", ".ome.tiff")) and path.is_file():
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                return "napari_pcim" in (tif.pages[0].description or "")
        except Exception:  # not a TIFF at all  # noqa: BLE001
            return False
    return name.endswith(".ome.zarr") and path.is_dir() and _zattrs_has_ours(path)


def is_ours(path: str | os.PathLike, kind: Kind) -> bool:
    """True when ``path`` is a ``kind`` that napari-pcim wrote (judged by its metadata)."""
    from napari_pcim.plate_io.tiff_folder import META_NAME

    path = Path(path)
    if kind == "model":
        return _model_is_ours(path)
    if kind == "export":
        return _export_is_ours(path)
    return path.is_dir() and (_zattrs_has_ours(path) or (path / META_NAME).is_file())


def refuse_inputs(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None]) -> None:
    """``ValueError`` when ``out`` is, lies inside or contains one of ``inputs``."""
    out = Path(out)
    target = out.resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        if target == source or source in target.parents:
            raise ValueError(f"--out {out}: is the input {given} or inside it; choose a path outside it")
        if target in source.parents:
            raise ValueError(f"--out {out}: contains the input {given}; choose another path")


def check_out(out: str | os.PathLike, kind: Kind, *, overwrite: bool,
              inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Refuse ``out`` (``ValueError`` / ``FileExistsError`` naming it) unless it may be written."""
    out = Path(out)
    refuse_inputs(out, inputs)
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise FileExistsError(f"--out {out}: already exists; pass --overwrite to replace it")
        if not is_ours(out, kind):
            raise ValueError(f"--out {out}: exists and is not a {_WHAT[kind]}; refusing to replace it "
                             "even with --overwrite; choose another --out or remove it yourself")
    return out

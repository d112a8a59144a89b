"""Atomic writes: a file or folder appears whole at its path, or not at all.

Every writer of the project (plates, exports, result stores, CSV tables, models,
JSON sidecars) goes through these helpers, so there is one temp-name scheme:
``.<name>.<8 hex>.tmp`` beside the target, which :func:`is_temp_name` recognises
and :func:`remove_stale_temps` cleans. Files get the user's normal permissions
(``0o666`` less the umask), not ``mkstemp``'s private ``0o600``.

Written here rather than taken from a library: the standard library has the
primitive (``os.replace``), and the few PyPI helpers (e.g. ``atomicwrites``) are
unmaintained and handle neither folders nor the umask.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_TEMP = re.compile(r"^\..+\.[0-9a-f]{8}\.(tmp|old)$")


def temp_sibling(path: str | os.PathLike, kind: str = "tmp") -> Path:
    """A fresh hidden sibling name of ``path``: ``.<name>.<8 hex>.<kind>``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.{kind}")


def is_temp_name(name: str) -> bool:
    """True for the names :func:`temp_sibling` makes (readers must skip them)."""
    return bool(_TEMP.match(name))


def remove_stale_temps(folder: str | os.PathLike, *, of: str | None = None) -> int:
    """Delete leftover temp files/folders in ``folder`` (e.g. after a kill -9); returns the count.

    With ``of``, only the temps of that one name (``.<of>.<8 hex>.tmp|old``) are removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    n = 0
    for entry in folder.iterdir():
        if is_temp_name(entry.name) and (of is None or entry.name[:-13] == f".{of}"):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            n += 1
    return n


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _discard(tmp: Path) -> None:
    """Remove a failed write's temp file or folder, and keep it removed.

    zarr-python 3 writes chunks from its own event-loop thread and finishes the chunk
    writes already queued after the first one fails, recreating folders inside ``tmp``
    after a first ``rmtree``; so the removal is repeated until the path stays gone
    (bounded: about one second).
    """
    quiet = 0
    for _ in range(40):
        if tmp.exists() or tmp.is_symlink():
            quiet = 0
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        else:
            quiet += 1
            if quiet == 3:  # gone for three checks in a row: no writes are pending
                return
        time.sleep(0.03)


def _replace(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move ``tmp`` to ``out``; an existing ``out`` is swapped out only with ``overwrite``."""
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise FileExistsError(f"{out} already exists; pass overwrite=True to replace it")
        if out.is_dir() and not out.is_symlink():
            old = temp_sibling(out, "old")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
            return
    os.replace(tmp, out)


@contextmanager
def atomic_file(out: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp path to write; it becomes ``out`` only if the block succeeds."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(out)
    try:
        yield tmp
        if tmp.is_file():
            os.chmod(tmp, 0o666 & ~_umask())
        _replace(tmp, out, overwrite)
    except BaseException:
        _discard(tmp)
        raise


@contextmanager
def atomic_directory(out: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp sibling folder that replaces ``out`` only if the block succeeds.

    A failure leaves ``out`` untouched (absent, or the old folder when overwriting).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(out)
    tmp.mkdir()
    try:
        yield tmp
        _replace(tmp, out, overwrite)
    except BaseException:
        _discard(tmp)
        raise


def write_bytes(out: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``out`` atomically."""
    with atomic_file(out, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(out)


def write_text(out: str | os.PathLike, text: str, *, overwrite: bool = True) -> Path:
    """Write UTF-8 ``text`` to ``out`` atomically."""
    return write_bytes(out, text.encode("utf-8"), overwrite=overwrite)


def write_json(out: str | os.PathLike, obj: Any, *, overwrite: bool = True, indent: int = 1) -> Path:
    """Write strict JSON (no bare NaN/Infinity: ValueError instead) to ``out`` atomically."""
    return write_text(out, json.dumps(obj, indent=indent, allow_nan=False), overwrite=overwrite)


def write_with(out: str | os.PathLike, write: Callable[[Path], None], *, overwrite: bool = True) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``out`` atomically (file or folder)."""
    with atomic_file(out, overwrite=overwrite) as tmp:
        write(tmp)
    return Path(out)

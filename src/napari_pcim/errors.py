"""User errors versus bugs: the one rule the CLI and the widgets share.

:func:`user_message` sorts an exception. A user error (a bad file or option, a refusal,
a non-finite result, disk full, a read-only or unwritable folder, out of memory) gets
one line naming the path or option; anything else is a bug (None), which keeps its
traceback and gets :func:`bug_report_line`. The CLI (:func:`napari_pcim.cli.main.main`)
prints the line and exits 2, or the traceback and exits 1; the widgets
(``_napari/widgets/errors.py``) show the line as a napari notification.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]


def _free_space(path: str | os.PathLike | None) -> str:
    """Free space of the disk holding ``path`` (its nearest existing folder), e.g. ``"1.2 GB"``."""
    where = Path(path or ".").absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return "unknown space"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if free < 1000 or unit == "TB":
            return f"{free:.0f} {unit}" if unit == "B" else f"{free:.1f} {unit}"
        free /= 1000
    return ""  # pragma: no cover


def _is_disk_full(exc: BaseException) -> bool:
    # numpy/tifffile report a short write as "N requested and M written", without errno.
    text = str(exc)
    return getattr(exc, "errno", None) == errno.ENOSPC or ("requested and" in text and "written" in text)


def _is_out_of_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text))


def _os_message(exc: OSError, out: str | None) -> str:
    path = exc.filename if exc.filename is not None else out
    if exc.errno == errno.EROFS:
        return f"{path}: read-only file system; choose an output on a writable disk"
    if isinstance(exc, PermissionError) and exc.errno is not None:
        return f"{path}: permission denied; choose an output you can write to"
    if exc.strerror and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def user_message(exc: BaseException, out: str | None = None) -> str | None:
    """One line for a user error (``out`` is the command's output path, when it has one);
    None for a bug."""
    for e in _chain(exc):
        if isinstance(e, OSError) and _is_disk_full(e):
            path = e.filename if getattr(e, "filename", None) is not None else out
            return (f"{path}: disk full (no space left on device; {_free_space(path)} free on that disk); "
                    "free some space or choose an output on another disk")
        if _is_out_of_memory(e):
            return (f"out of memory ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                    "use a smaller batch_size, smaller fields or another device")
    if isinstance(exc, OSError):
        return _os_message(exc, out)
    if isinstance(exc, ValueError):
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def bug_report_line() -> str:
    """Ask for a report, with the issue tracker named in the package's project URLs."""
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        urls = metadata("napari-pcim").get_all("Project-URL") or []
    except PackageNotFoundError:
        urls = []
    pairs = [u.partition(",")[::2] for u in urls]
    tracker = next((url.strip() for label, url in pairs if "issue" in label.lower() or "bug" in label.lower()), None)
    if tracker is None:
        repo = next((url.strip() for _, url in pairs if "github.com/" in url), None)
        if repo is not None:
            tracker = "/".join(repo.split("/")[:5]) + "/issues"
    where = f" at {tracker}" if tracker else ""
    return f"this is a bug in napari-pcim: please report it{where}, with the traceback and what you ran"

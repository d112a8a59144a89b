"""Real faults for tests: a folder nobody can write to, and a disk that fills up mid-write."""

from __future__ import annotations

import os
import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def read_only_folder(tmp_path: Path) -> Path:
    """A folder writes to fail in: ``tmp_path/ro`` made read-only, or, when the tests run as
    root (who may write anywhere), sysfs, which refuses new files even to root."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        return folder
    (folder / "probe").unlink()
    return Path("/sys/kernel")


@contextmanager
def disk_full_after(n_bytes: int) -> Iterator[None]:
    """Writes past ``n_bytes`` per file fail like a full disk does (RLIMIT_FSIZE, SIGXFSZ ignored)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def listing(folder: Path) -> list[str]:
    """Names in ``folder`` (temp files included), to check a failed write left nothing."""
    return sorted(os.listdir(folder))

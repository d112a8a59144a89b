"""Compute devices: pick where a classifier and its explainers run.

``resolve_device("auto")`` prefers CUDA, then Apple's MPS, then the CPU; an
explicit name (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``) is honoured or
refused with a clear :class:`DeviceError`. ``available_devices()`` lists the
choices a user can pick from (the Model widget fills a dropdown with it).

torch is imported inside the functions so that the napari widgets can import
this module at plugin load without paying for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class DeviceError(ValueError):
    """A requested device name is malformed or not available on this machine."""


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Device names usable here: ``["auto", "cpu", "cuda:0", ..., "mps"]``."""
    import torch

    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return names


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """Turn a device name into a :class:`torch.device` that exists on this machine.

    ``"auto"`` (or ``None``) picks CUDA, then MPS, then the CPU. Any other name
    must be available, otherwise :class:`DeviceError` says what is.
    """
    import torch

    if name is None or (isinstance(name, str) and name.strip().lower() == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = name if isinstance(name, torch.device) else torch.device(name.strip().lower())
    except (RuntimeError, AttributeError) as exc:
        raise DeviceError(
            f"unknown device {name!r}; expected one of {available_devices()}"
        ) from exc
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {str(device)!r} requested but CUDA is not available "
                f"(torch {torch.__version__}); available: {available_devices()}"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(
                f"device {str(device)!r} requested but only {count} CUDA device(s) exist; "
                f"available: {available_devices()}"
            )
        return device
    if device.type == "mps":
        if not _mps_available():
            raise DeviceError(
                f"device 'mps' requested but MPS is not available; "
                f"available: {available_devices()}"
            )
        return device
    raise DeviceError(
        f"unsupported device type {device.type!r}; expected one of {available_devices()}"
    )

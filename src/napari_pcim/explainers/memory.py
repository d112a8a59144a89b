"""How much memory an ``explain()`` job needs, checked before any compute.

The estimate adds what the job allocates beyond the caller's raw field array:
the normalised fields, the baseline images, the tile maps and the assembled maps
(all proportional to the fields' area), the PCIM mixing weights with their Adam
state (six float32 values per tile pixel of the largest batch), and the model's
own work for one batch of tiles (an allowance of :data:`ACTIVATION_BYTES` per
tile pixel for activations kept for the backward pass). It is compared with
``psutil.virtual_memory().available`` on the CPU, or the CUDA device's free memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from napari_pcim.tiling import TilePlan

#: Allowance for a model's activations per tile pixel in one batch (forward and backward).
ACTIVATION_BYTES = 1024
_GIB = 2**30


def estimate_bytes(plan: TilePlan, n_fields: int, n_channels: int, n_targets: int,
                   batch_size: int, needs_baseline: bool) -> dict[str, int]:
    """The parts of a job's peak memory in bytes: fields, baselines, maps, per-batch work."""
    Y, X = plan.field_shape
    h, w = plan.tile
    tile_px = h * w
    field_px = n_fields * Y * X
    work_px = n_fields * plan.work_shape[0] * plan.work_shape[1]
    tiles_px = n_fields * plan.n_tiles * tile_px
    batch_px = max(batch_size, plan.n_tiles) * tile_px
    return {
        # raw → float32 copy → normalised, and the resized work grid when it differs
        "fields": 4 * n_channels * (2 * field_px + (work_px if work_px != field_px else 0)),
        "baselines": 4 * n_channels * field_px if needs_baseline else 0,
        # tile maps, the blended work grid and the maps on the field grid
        "maps": 4 * n_targets * (tiles_px + work_px + field_px),
        "per-batch work": 6 * 4 * batch_px + ACTIVATION_BYTES * batch_size * tile_px,
    }


def available_bytes(device: torch.device) -> int:
    """Free memory on ``device``: the CUDA device's free memory, else the system's available RAM."""
    if device.type == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    return int(psutil.virtual_memory().available)


def check_fits(parts: dict[str, int], device: torch.device, batch_size: int) -> None:
    """ValueError (one line: the estimate, its parts, what is free, what to lower) when it cannot fit."""
    need, free = sum(parts.values()), available_bytes(device)
    if need <= free:
        return
    detail = ", ".join(f"{k} {v / _GIB:.1f}" for k, v in parts.items())
    raise ValueError(
        f"this explain job needs about {need / _GIB:.1f} GiB ({detail} GiB) but only "
        f"{free / _GIB:.1f} GiB of {device} memory is free; lower batch_size (now {batch_size}) "
        "or explain fewer or smaller fields at once"
    )

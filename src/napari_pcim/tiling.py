"""Fields larger (or smaller) than a classifier's input: cut into tiles, blend maps back.

A classifier sees ``input_size`` (h, w) images. Its metadata says how a field of
another size becomes classifier input (``field_mode``):

- ``"resize"``: the field is resized bilinearly to (h, w); the map computed there
  is resized back to the field's grid.
- ``"tile"``: the field is cut into (h, w) tiles overlapping by ``tile_overlap``
  pixels (:func:`tile_starts`), exactly as :meth:`Classifier.field_logits` does
  (it uses this plan); an axis shorter than the tile is
  first resized up to the tile size. Each tile gets its own map; the maps are
  blended with a separable linear ramp over the overlap (:func:`ramp_window`),
  normalised so the weights sum to 1 at every pixel.

:class:`TilePlan` holds the geometry; :meth:`TilePlan.split` and
:meth:`TilePlan.assemble` do the work on torch tensors. :class:`Tiles` is the
lazy form of ``split``: it cuts the tiles a method asks for, a chunk at a time,
so a large field's tiles are never all in memory at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from napari_pcim.classifier_meta import ClassifierMeta


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` pixels.

    Consecutive tiles overlap by at least ``overlap`` pixels; the last tile is
    flush with the edge. A length not larger than the tile gives ``[0]``.
    """
    if tile <= 0 or not 0 <= overlap < tile:
        raise ValueError(f"need tile > 0 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}")
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, tile - overlap))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def ramp_window(length: int, overlap: int, device: torch.device | None = None) -> torch.Tensor:
    """1-D blending weights of a tile: ``r(i) = min(1, (i+1)/(o+1), (L-i)/(o+1))``.

    Weights rise linearly over the first ``overlap`` pixels and fall over the
    last ``overlap``; they are strictly positive, so every pixel of a field is
    covered by a positive total weight. ``overlap == 0`` gives all ones.
    """
    i = torch.arange(length, dtype=torch.float32, device=device)
    if overlap <= 0:
        return torch.ones(length, dtype=torch.float32, device=device)
    o = float(overlap + 1)
    return torch.clamp(torch.minimum((i + 1) / o, (length - i) / o), max=1.0)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, C, H, W); antialiased when shrinking along either axis."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


@dataclass(frozen=True)
class TilePlan:
    """How fields of ``field_shape`` map to classifier inputs of ``tile`` size.

    ``work_shape`` is the field's size after any resize (equal to ``tile`` in
    resize mode); ``ys``/``xs`` are tile start offsets in that work grid; tiles
    are ordered row-major (all ``xs`` for the first ``y``, ...), as in
    :meth:`Classifier.field_logits`.
    """

    field_shape: tuple[int, int]
    work_shape: tuple[int, int]
    tile: tuple[int, int]
    overlap: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]
    mode: str

    @classmethod
    def for_classifier(cls, meta: ClassifierMeta, field_shape: tuple[int, int]) -> TilePlan:
        """The plan the classifier's own ``field_logits`` uses for this field size."""
        h, w = meta.input_size
        Y, X = field_shape
        if (Y, X) == (h, w) or meta.field_mode == "resize":
            return cls((Y, X), (h, w), (h, w), 0, (0,), (0,), "resize" if (Y, X) != (h, w) else "exact")
        work = (max(Y, h), max(X, w))
        ys = tuple(tile_starts(work[0], h, meta.tile_overlap))
        xs = tuple(tile_starts(work[1], w, meta.tile_overlap))
        return cls((Y, X), work, (h, w), meta.tile_overlap, ys, xs, "tile")

    @property
    def n_tiles(self) -> int:
        """Tiles per field."""
        return len(self.ys) * len(self.xs)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """Fields (N, C, Y, X) → classifier inputs (N * n_tiles, C, h, w), field-major."""
        return Tiles(self, x)[:]

    def tiles(self, x: torch.Tensor) -> Tiles:
        """The lazy :meth:`split` of fields (N, C, Y, X): tiles are cut when indexed."""
        return Tiles(self, x)

    def split_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Label images (N, Y, X) → tile label images (N * n_tiles, h, w) (nearest resize)."""
        lab = labels[:, None].double()
        if tuple(lab.shape[-2:]) != self.work_shape:
            lab = F.interpolate(lab, size=self.work_shape, mode="nearest")
        return self.split(lab)[:, 0].round().long()

    def assemble(self, maps: torch.Tensor) -> torch.Tensor:
        """Tile maps (N * n_tiles, T, h, w) → field maps (N, T, Y, X) on the field's grid.

        Overlaps are blended as ``sum_t r_t * map_t / sum_t r_t`` with the separable
        ramp ``r_t(y, x) = ramp(y) * ramp(x)`` of :func:`ramp_window`.
        """
        h, w = self.tile
        n = maps.shape[0] // self.n_tiles
        maps = maps.reshape(n, self.n_tiles, *maps.shape[1:]).float()
        if self.mode == "tile":
            dev = maps.device
            win = ramp_window(h, self.overlap, dev)[:, None] * ramp_window(w, self.overlap, dev)[None, :]
            acc = maps.new_zeros(n, maps.shape[2], *self.work_shape)
            norm = maps.new_zeros(self.work_shape)
            k = 0
            for y in self.ys:
                for x0 in self.xs:
                    acc[:, :, y : y + h, x0 : x0 + w] += maps[:, k] * win
                    norm[y : y + h, x0 : x0 + w] += win
                    k += 1
            out = acc / norm
        else:
            out = maps[:, 0]
        return _resize(out, self.field_shape)


class Tiles:
    """The tiles of fields (N, C, Y, X) under a :class:`TilePlan`, cut only when indexed.

    Indexing with an int, a slice, a list or a 1-D integer tensor of tile numbers
    (field-major, as :meth:`TilePlan.split` orders them) returns those tiles as
    one new (k, C, h, w) tensor. ``shape``, ``device``, ``dtype`` and ``len()``
    describe the whole stack without building it.
    """

    def __init__(self, plan: TilePlan, fields: torch.Tensor) -> None:
        self.plan = plan
        self.work = _resize(fields, plan.work_shape)
        n, c = fields.shape[:2]
        self.shape = torch.Size((n * plan.n_tiles, c, *plan.tile))
        self.device = fields.device
        self.dtype = fields.dtype
        self._starts = [(y, x0) for y in plan.ys for x0 in plan.xs]

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int | slice | list[int] | torch.Tensor) -> torch.Tensor:
        if isinstance(index, int):
            return self[[index]][0]
        if isinstance(index, slice):
            numbers = list(range(len(self)))[index]
        else:
            numbers = torch.as_tensor(index).reshape(-1).tolist()
        h, w = self.plan.tile
        k = self.plan.n_tiles
        if not numbers:
            return self.work.new_empty((0, *self.shape[1:]))
        parts = []
        for i in numbers:
            y, x0 = self._starts[i % k]
            parts.append(self.work[i // k, :, y : y + h, x0 : x0 + w])
        return torch.stack(parts)

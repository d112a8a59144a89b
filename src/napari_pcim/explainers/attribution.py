"""The result of ``explain()``: :class:`Attribution`, maps plus what produced them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from napari_pcim.explainers.registry import method_label


@dataclass
class Attribution:
    """Attribution maps of N fields for T target classes each.

    ``maps`` (N, T, Y, X) float32 on each field's own pixel grid; ``targets`` (N, T)
    class indices; ``classes`` the classifier's class names; ``probabilities``
    (N, K) field-level class probabilities of the unperturbed fields; ``options``
    the resolved method options (plus ``seed``); ``timings`` in seconds
    (``total``, ``per_field``, ``setup``, ``attribution``, ``forward_passes``:
    time inside the model's forward passes, PCIM's including backward);
    ``n_forward``: images passed through the model.

    With ``explain(..., per_channel=True)``: ``channel_maps`` (N, T, C, Y, X) float32,
    ``channel_importance`` (N, T, C) (each row: the channels' shares of the positive
    attribution, summing to 1, or all zeros when there is none) and ``channel_names``
    (the classifier's channel order). Gradient methods and PCIM decompose the map
    (the channel maps sum to it); the others apportion it by channel ablation
    (:mod:`napari_pcim.explainers.channels`). Otherwise all three are None.

    ``info``: how the run went: ``batch_size`` (images per model call) and
    ``batch_size_tuned`` (True when :mod:`.batching` chose it),
    ``recommended_by_model`` (the options of the model's metadata, :mod:`.recommended`,
    that the run follows: left to the model or passed with the same value); RISE adds
    ``masks_used`` (≤ ``n_masks``), ``converged`` (1.0 when it stopped on its
    tolerance) and ``noise_ratio`` (the last check's noise ÷ map variance).
    """

    maps: np.ndarray
    targets: np.ndarray
    classes: tuple[str, ...]
    probabilities: np.ndarray
    method: str
    options: dict[str, Any]
    timings: dict[str, float]
    device: str
    n_forward: int = 0
    channel_maps: np.ndarray | None = None
    channel_importance: np.ndarray | None = None
    channel_names: tuple[str, ...] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def _class_index(self, target: int | str) -> int:
        if isinstance(target, str):
            if target not in self.classes:
                raise ValueError(f"unknown class {target!r}; classes: {list(self.classes)}")
            return self.classes.index(target)
        return int(target)

    def map(self, field_index: int = 0, target: int | str | None = None) -> np.ndarray:
        """The (Y, X) map of one field for one target class (name or index; None: the first)."""
        if not 0 <= field_index < self.maps.shape[0]:
            raise IndexError(f"field_index {field_index} out of range for {self.maps.shape[0]} field(s)")
        if target is None:
            return self.maps[field_index, 0]
        k = self._class_index(target)
        hits = np.flatnonzero(self.targets[field_index] == k)
        if hits.size == 0:
            explained = [self.classes[int(t)] for t in self.targets[field_index]]
            raise ValueError(
                f"class {self.classes[k] if 0 <= k < len(self.classes) else k!r} was not explained "
                f"for field {field_index}; explained: {explained}"
            )
        return self.maps[field_index, int(hits[0])]

    def label(self, field_index: int = 0, t: int = 0) -> str:
        """Display name of map ``t`` of a field, e.g. ``"PCIM · treated"``."""
        name = method_label(self.method)
        return f"{name} · {self.classes[int(self.targets[field_index, t])]}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe summary (no maps): method, classes, targets, probabilities, options, timings."""
        return {
            "method": self.method,
            "classes": list(self.classes),
            "shape": list(self.maps.shape),
            "targets": self.targets.astype(int).tolist(),
            "target_names": [[self.classes[int(t)] for t in row] for row in self.targets],
            "probabilities": self.probabilities.astype(float).tolist(),
            "options": {k: _json_safe(v) for k, v in self.options.items()},
            "timings": {k: float(v) for k, v in self.timings.items()},
            "device": self.device,
            "n_forward": int(self.n_forward),
            "info": {k: _json_safe(v) for k, v in self.info.items()},
            **({} if self.channel_importance is None else {
                "channel_names": list(self.channel_names or ()),
                "channel_importance": self.channel_importance.astype(float).tolist(),
            }),
        }


def _json_safe(value: Any) -> Any:
    """A JSON-able stand-in for an option value (arrays as their shape)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.ndarray | torch.Tensor):
        return f"<array shape={list(value.shape)}>"
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return repr(value)

"""The method registry: every explainer as one :class:`Explainer` entry, captum-style.

A method is built on the classifier's forward function and has one attribute
call: :attr:`Explainer.attribute` receives a :class:`Job` (the normalised tiles
of the fields, their targets, the tiled baselines, progress and cancel) and the
method's validated options, and returns tile maps ``(B, T, h, w)``. ``explain()``
does everything else (input checks, normalisation, tiling, assembly), so adding
a method is one file that calls :func:`register` once.

Entries register themselves when their module is imported; importing
:mod:`napari_pcim.explainers` imports them all, product methods first (the GUI
order), then the comparison (captum) methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from napari_pcim.tiling import TilePlan, Tiles


@dataclass
class Job:
    """One ``explain()`` call as a method sees it.

    ``forward``: the classifier's module (tile → logits); ``tiles`` (B, C, h, w)
    normalised classifier inputs, ``plan.n_tiles`` consecutive tiles per field, as
    lazy :class:`~napari_pcim.tiling.Tiles` (index them a batch at a time);
    ``targets`` (B, T) class indices (each field's targets repeated per tile);
    ``fields`` (N, C, Y, X) the normalised fields; ``baselines`` (B, C, h, w) the
    tiled baseline images (lazy too), or None for a method that needs none. A method
    checks the model's outputs with :func:`~napari_pcim.explainers.runtime.check_finite`
    and writes
    ``forward_passes`` (images through the model) and ``forward_seconds`` (time
    in the model) into ``stats``.
    """

    classifier: Any
    forward: Callable[[torch.Tensor], torch.Tensor]
    tiles: Tiles
    targets: torch.Tensor
    plan: TilePlan
    fields: torch.Tensor
    baselines: Tiles | None
    seed: int = 0
    progress: Callable[[int, int], None] | None = None
    should_stop: Callable[[], bool] | None = None
    stats: dict[str, float] = field(default_factory=dict)


def _usable(_classifier: Any) -> str:
    return ""


@dataclass(frozen=True)
class Explainer:
    """A registered method.

    ``attribute(job, options) -> tile maps (B, T, h, w)``; ``unavailable(classifier)``
    gives why the method cannot explain that classifier ("" = usable);
    ``check(options, classifier, (N, Y, X))`` refuses inputs before any compute;
    ``needs_baseline``: ``explain()`` builds ``job.baselines`` from the options'
    ``baseline`` and ``blur_sigma``; ``comparison``: a captum method to compare
    against, not a product method; ``channels(job, options) -> (tile channel maps
    (B, T, C, h, w), the options used)``: the method's per-channel decomposition, whose
    sum over channels is its pixel map (``explain(..., per_channel=True)`` runs it
    instead of ``attribute``); None: the pixel map is apportioned by channel ablation
    (:mod:`napari_pcim.explainers.channels`).
    """

    name: str
    label: str
    options_cls: type
    attribute: Callable[[Job, Any], torch.Tensor]
    unavailable: Callable[[Any], str] = _usable
    check: Callable[[Any, Any, tuple[int, int, int]], None] | None = None
    needs_baseline: bool = True
    comparison: bool = False
    channels: Callable[[Job, Any], tuple[torch.Tensor, Any]] | None = None


#: The method ``explain()`` runs when none is named.
DEFAULT_METHOD = "pcim"

_REGISTRY: dict[str, Explainer] = {}
#: Method name → its options dataclass, for every registered method.
METHOD_OPTIONS: dict[str, type] = {}
#: Method name → display name ("PCIM", "Integrated Gradients", ...).
METHOD_LABELS: dict[str, str] = {}


def register(entry: Explainer) -> Explainer:
    """Add ``entry`` to the registry (once per name); returns it."""
    if entry.name in _REGISTRY:
        raise ValueError(f"explainer {entry.name!r} is already registered")
    _REGISTRY[entry.name] = entry
    METHOD_OPTIONS[entry.name] = entry.options_cls
    METHOD_LABELS[entry.name] = entry.label
    return entry


def registered(comparison: bool | None = None) -> tuple[str, ...]:
    """Registered method names in registration order (only product or comparison ones if asked)."""
    return tuple(n for n, e in _REGISTRY.items() if comparison is None or e.comparison == comparison)


def get_explainer(name: str) -> Explainer:
    """The registry entry of ``name``; ValueError listing the known methods otherwise."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; expected one of {list(_REGISTRY)}")
    return _REGISTRY[name]


def method_label(name: str) -> str:
    """Display name of a method ("PCIM", "Grad-CAM"); an unknown name in upper case."""
    entry = _REGISTRY.get(name)
    return entry.label if entry is not None else name.upper()


def options_class(name: str) -> type:
    """The options dataclass of method ``name``."""
    return get_explainer(name).options_cls


def method_defaults(name: str) -> Any:
    """A fresh options dataclass of method ``name`` holding its defaults."""
    return options_class(name)()


def unavailable_reason(name: str, classifier: Any) -> str:
    """Why method ``name`` cannot explain ``classifier``; "" when it can."""
    return get_explainer(name).unavailable(classifier)

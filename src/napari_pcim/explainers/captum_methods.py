"""Captum methods: gradient, perturbation and region attribution to compare PCIM against.

Optional extra: ``pip install napari-pcim[baselines]`` (captum). Captum is
imported inside the functions, so this module imports without it and says how
to install it when a method is called.

Every method is computed on the classifier's forward ``f(x) -> logits (B, K)``
of normalised inputs ``x`` (B, C, H, W) — a TorchScript module works, since
captum's gradient methods only need autograd on the input — and returns pixel
maps ``(B, H, W)`` like PCIM and RISE:

- ``saliency``: |∂f_t/∂x| (Simonyan et al. 2014);
- ``input_x_gradient``: x · ∂f_t/∂x;
- ``integrated_gradients``: path integral from a baseline image (Sundararajan et al. 2017);
- ``occlusion``: drop in f_t when a square window is replaced by the baseline
  (Zeiler & Fergus 2014);
- ``feature_ablation``: drop in f_t when each region of a label image (nuclei,
  cells, worms; label 0 is the background region) is replaced by the baseline;
- ``gradcam``: Grad-CAM on the last ``Conv2d``; only for a plain ``torch.nn.Module``
  (see :func:`gradcam_layer` for why TorchScript modules are refused).

Channel reduction, the same meaning for every method: a pixel's value is the
**total attribution of all its channels**. For the gradient methods that is the
sum over channels of captum's per-channel attribution (Saliency's is already an
absolute value by definition; the others keep their sign). Occlusion and
feature ablation perturb all channels of a pixel together and captum copies
that joint effect to every channel, so one copy (the channel mean) is the
total; Grad-CAM has a single channel. The metrics' normalisation then keeps
the positive part. With ``explain(..., per_channel=True)`` the gradient methods
return the per-channel attribution before that sum (channel maps that add up to
the pixel map); occlusion, feature ablation and Grad-CAM are apportioned by
channel ablation (:mod:`napari_pcim.explainers.channels`). ``baseline`` names a :func:`napari_pcim.baseline_images.make_baseline`
kind, so "removed" means the same as in PCIM, RISE and the fidelity metrics.

Each method is one module of :mod:`napari_pcim.explainers.comparison` holding its
options dataclass and its captum call; :func:`register_captum` (here) turns that
into a registry entry, so ``explain(classifier, field, method="occlusion")``
works like PCIM. :func:`attribute_baseline` is the same call on a plain forward
function and normalised tensors.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import fields as dc_fields
from typing import Any

import numpy as np
import torch

from napari_pcim.baseline_images import make_baseline
from napari_pcim.explainers.options import validate_options
from napari_pcim.explainers.regions import regions_batch, slic_labels
from napari_pcim.explainers.registry import Explainer, Job, get_explainer, register, registered
from napari_pcim.explainers.runtime import check_finite, check_stop, report

_INSTALL_HINT = "captum baselines need the optional extra: pip install napari-pcim[baselines]"
#: Tiles per captum call when ``explain()`` runs a captum method (progress and cancel granularity).
TILE_BATCH = 16


class BaselineError(ValueError):
    """A baseline method cannot run on these inputs; the message says why."""


def captum_attr() -> Any:
    """``captum.attr``, or ImportError naming the optional extra that installs it."""
    try:
        import captum.attr as captum_attr
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return captum_attr


def captum_missing(_classifier: Any = None) -> str:
    """Why no captum method can run ("" when captum is installed)."""
    return "" if importlib.util.find_spec("captum") is not None else _INSTALL_HINT


def gradcam_layer(model: Any) -> torch.nn.Module:
    """The last ``Conv2d`` of a plain ``nn.Module``, for Grad-CAM; BaselineError otherwise.

    A TorchScript module (every napari-pcim classifier file) runs its compiled
    graph: forward hooks registered on its submodules after scripting are
    accepted but never fire, so captum's LayerGradCam would get no activations.
    Grad-CAM therefore needs the original Python ``nn.Module``.
    """
    if isinstance(model, torch.jit.ScriptModule) or isinstance(
        getattr(model, "module", None), torch.jit.ScriptModule
    ):
        raise BaselineError(
            "Grad-CAM needs a plain torch.nn.Module: TorchScript modules run their compiled "
            "graph, so forward hooks on their conv layers never fire and captum's LayerGradCam "
            "cannot see the activations. Pass the Python model (e.g. from napari_pcim.training.architectures) "
            "or use PCIM, RISE or the other baselines"
        )
    if not isinstance(model, torch.nn.Module):
        raise BaselineError(
            f"Grad-CAM needs a torch.nn.Module with a Conv2d layer, got {type(model).__name__} "
            "(a plain forward function has no layer to hook)"
        )
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise BaselineError(f"Grad-CAM: {type(model).__name__} has no torch.nn.Conv2d layer")
    return convs[-1]


def region_mask(regions: Any, x: torch.Tensor) -> torch.Tensor:
    """Label image(s) (H, W) or (B, H, W) → captum feature mask (B, 1, H, W), labels 0..n-1."""
    if regions is None:
        raise BaselineError("feature_ablation needs regions=: a label image of nuclei, cells or worms")
    r = np.asarray(regions)
    b, _, h, w = x.shape
    if r.ndim == 2 and r.shape == (h, w):
        r = np.broadcast_to(r, (b, h, w))
    if r.shape != (b, h, w) or not np.issubdtype(r.dtype, np.integer):
        raise BaselineError(
            f"regions must be an integer label image (H, W) or (B, H, W) matching the input "
            f"{(b, h, w)}, got shape {r.shape} dtype {r.dtype}"
        )
    # Consecutive labels per field: each field's regions become features 0..n_i-1.
    out = np.stack([np.unique(ri, return_inverse=True)[1].reshape(h, w) for ri in r])
    return torch.as_tensor(out[:, None], dtype=torch.long, device=x.device)


@dataclass
class CaptumCall:
    """One captum call: ``f`` (x → scores), the ``model`` behind it (Grad-CAM hooks its
    layers), inputs ``x`` (B, C, H, W) that require grad, ``target`` (B,), the
    ``baselines`` (B, C, H, W) or None and the ``regions`` label images (B, H, W) or None."""

    f: Callable[[torch.Tensor], torch.Tensor]
    model: Any
    x: torch.Tensor
    target: torch.Tensor
    baselines: torch.Tensor | None = None
    regions: Any = None


#: A method's captum call: (call, options) → captum's attribution (B, C or 1, H, W).
Core = Callable[[CaptumCall, Any], torch.Tensor]


@dataclass(frozen=True)
class _Captum:
    core: Core
    whole_pixel: bool


_CORES: dict[str, _Captum] = {}


def _pixel_maps(method: _Captum, call: CaptumCall, opts: Any, per_channel: bool = False
                ) -> torch.Tensor:
    """(B, H, W): the method's attribution, reduced to one value per pixel (module docstring);
    with ``per_channel`` (gradient methods only) the unreduced (B, C, H, W)."""
    attr = method.core(call, opts).detach().float()
    if per_channel:
        return attr
    # Occlusion and ablation features span all channels and captum copies each
    # feature's total to every channel: one copy is the pixel's total.
    return attr.mean(dim=1) if method.whole_pixel else attr.sum(dim=1)


def _job_regions(job: Job, opts: Any) -> torch.Tensor | None:
    """Tile label images (B, h, w) for a region method: the option's, else SLIC superpixels."""
    if not hasattr(opts, "regions"):
        return None
    n, _, y, x = job.fields.shape
    if opts.regions is not None:
        regions = regions_batch(opts.regions, n, (y, x))
    else:
        xs = job.fields.float().cpu().numpy()
        regions = np.stack([slic_labels(xs[i], opts.n_segments) for i in range(n)])
    lab = torch.from_numpy(np.ascontiguousarray(regions, dtype=np.int64)).to(job.tiles.device)
    return job.plan.split_labels(lab)


def _attribute_job(name: str, per_channel: bool = False) -> Callable[[Job, Any], torch.Tensor]:
    """The registry's call of captum method ``name``: tiles in batches of :data:`TILE_BATCH`;
    with ``per_channel``, tile channel maps (B, T, C, h, w)."""

    def attribute(job: Job, opts: Any) -> torch.Tensor:
        method = _CORES[name]
        captum_attr()  # fails early, naming the extra, when captum is missing
        B, T = job.targets.shape
        C = job.tiles.shape[1]
        out = torch.empty(B, T, *((C,) if per_channel else ()), *job.tiles.shape[-2:],
                          device=job.tiles.device)
        regions = _job_regions(job, opts)
        f = _counting(job.forward, job.stats)
        t0 = time.perf_counter()
        steps = [(t, s) for t in range(T) for s in range(0, B, TILE_BATCH)]
        for done, (t, s) in enumerate(steps, start=1):
            check_stop(job.should_stop, name)
            e = min(s + TILE_BATCH, B)
            call = CaptumCall(
                f, job.forward, job.tiles[s:e].detach().float().requires_grad_(True),
                job.targets[s:e, t],
                None if job.baselines is None else job.baselines[s:e],
                None if regions is None else regions[s:e].cpu().numpy(),
            )
            with torch.enable_grad():
                maps = _pixel_maps(method, call, opts, per_channel)
            check_finite(maps, "gradients or scores", "its own input", name, torch.arange(s, e))
            out[s:e, t] = maps
            report(job.progress, done, len(steps))
        job.stats["forward_seconds"] = time.perf_counter() - t0
        return out

    return attribute


def _counting(f: Callable[[torch.Tensor], torch.Tensor], stats: dict[str, float]) -> Callable:
    """``f`` that adds the images it sees to ``stats["forward_passes"]``."""
    stats.setdefault("forward_passes", 0)

    def counted(x: torch.Tensor) -> torch.Tensor:
        stats["forward_passes"] += x.shape[0]
        return f(x)

    return counted


def register_captum(
    name: str, label: str, options_cls: type, core: Core, *, whole_pixel: bool = False,
    unavailable: Callable[[Any], str] = captum_missing,
    check: Callable[[Any, Any, tuple[int, int, int]], None] | None = None,
) -> Explainer:
    """Register a captum method: its options, its captum call and how channels reduce.

    The method needs a baseline image exactly when its options have a ``baseline`` field.
    """
    _CORES[name] = _Captum(core, whole_pixel)
    needs_baseline = any(f.name == "baseline" for f in dc_fields(options_cls))
    channels = None
    if not whole_pixel:  # gradient methods decompose; the others are apportioned by ablation
        by_channel = _attribute_job(name, per_channel=True)

        def channels(job: Job, opts: Any) -> tuple[torch.Tensor, Any]:
            return by_channel(job, opts), opts

    return register(Explainer(
        name, label, options_cls, _attribute_job(name), unavailable=unavailable, check=check,
        needs_baseline=needs_baseline, comparison=True, channels=channels,
    ))


def attribute_baseline(
    name: str,
    forward: Callable[[torch.Tensor], torch.Tensor] | Any,
    x: torch.Tensor,
    target: Any,
    *,
    raw_zero: Any = None,
    output: str = "logit",
    **options: Any,
) -> np.ndarray:
    """Attribution maps (B, H, W) float32 of captum method ``name`` for ``target`` (B,) class indices.

    ``forward``: ``f(x) -> logits (B, K)``; a napari-pcim ``Classifier`` is accepted
    and its ``field_logits`` used (Grad-CAM needs a plain ``nn.Module``).
    ``x``: normalised inputs (B, C, H, W). ``raw_zero``: see
    :func:`napari_pcim.baseline_images.make_baseline`. ``output``: attribute the
    target's ``"logit"`` (default) or its softmax ``"probability"``. ``options``:
    the fields of the method's options class (e.g. ``regions=`` for feature_ablation).
    """
    if name not in registered(comparison=True):
        raise BaselineError(
            f"unknown baseline method {name!r}; expected one of {list(registered(comparison=True))}"
        )
    entry = get_explainer(name)
    accepted = [f.name for f in dc_fields(entry.options_cls)]
    unknown = set(options) - set(accepted)
    if unknown:
        raise BaselineError(f"{name}: unknown option(s) {sorted(unknown)}; accepted: {sorted(accepted)}")
    opts = entry.options_cls(**options)
    validate_options(opts, name)
    if output not in ("logit", "probability"):
        raise BaselineError(f"output must be 'logit' or 'probability', got {output!r}")
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise BaselineError(f"x must be a normalised tensor (B, C, H, W), got {getattr(x, 'shape', x)}")
    captum_attr()
    f = forward.field_logits if hasattr(forward, "field_logits") else forward
    if output == "probability":
        if name == "gradcam":
            raise BaselineError("gradcam attributes the logit only (output='logit')")
        logits_fn = f

        def f(inp: torch.Tensor) -> torch.Tensor:
            return torch.softmax(logits_fn(inp), dim=1)

    x = x.detach().float().requires_grad_(True)  # captum's gradient methods need it
    tgt = torch.as_tensor(np.asarray(target), dtype=torch.long, device=x.device).reshape(-1)
    if tgt.numel() == 1 and x.shape[0] > 1:
        tgt = tgt.expand(x.shape[0])
    if tgt.shape[0] != x.shape[0]:
        raise BaselineError(f"target has {tgt.shape[0]} entries for a batch of {x.shape[0]}")
    base = None
    if entry.needs_baseline:
        base = make_baseline(x.detach(), opts.baseline, raw_zero=raw_zero, blur_sigma=opts.blur_sigma)
    call = CaptumCall(f, forward, x, tgt, base, getattr(opts, "regions", None))
    return _pixel_maps(_CORES[name], call, opts).cpu().numpy()

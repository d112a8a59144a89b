"""Captum baselines: gradient, perturbation and region attribution to compare PCIM against.

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
the positive part. ``baseline`` names a :func:`napari_pcim.baseline_images.make_baseline`
kind, so "removed" means the same as in PCIM, RISE and the fidelity metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from napari_pcim.baseline_images import make_baseline

#: Methods and their default options (``attribute_baseline(name, ..., **options)``).
BASELINE_METHODS: dict[str, dict[str, Any]] = {
    "saliency": {},
    "input_x_gradient": {},
    "integrated_gradients": {"baseline": "median", "n_steps": 32, "internal_batch_size": 16},
    "occlusion": {"baseline": "median", "window": 16, "stride": 8, "perturbations_per_eval": 16},
    "feature_ablation": {"baseline": "median", "perturbations_per_eval": 16},
    "gradcam": {},
}

#: Methods whose perturbed features cover every channel of a pixel at once.
_WHOLE_PIXEL_METHODS = ("occlusion", "feature_ablation", "gradcam")

#: Methods that need ``regions=`` (a label image per field).
NEEDS_REGIONS = ("feature_ablation",)

_INSTALL_HINT = "captum baselines need the optional extra: pip install napari-pcim[baselines]"


class BaselineError(ValueError):
    """A baseline method cannot run on these inputs; the message says why."""


def _captum_attr() -> Any:
    try:
        import captum.attr as captum_attr
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return captum_attr


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


def _region_mask(regions: Any, x: torch.Tensor) -> torch.Tensor:
    """Label image(s) (H, W) or (B, H, W) → captum feature mask (B, 1, H, W), labels 0..n-1."""
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


def attribute_baseline(
    name: str,
    forward: Callable[[torch.Tensor], torch.Tensor] | Any,
    x: torch.Tensor,
    target: Any,
    *,
    regions: Any = None,
    baseline: str = "median",
    raw_zero: Any = None,
    output: str = "logit",
    **options: Any,
) -> np.ndarray:
    """Attribution maps (B, H, W) float32 of method ``name`` for ``target`` (B,) class indices.

    ``forward``: ``f(x) -> logits (B, K)``; a napari-pcim ``Classifier`` is accepted
    and its ``field_logits`` used (Grad-CAM needs a plain ``nn.Module``).
    ``x``: normalised inputs (B, C, H, W). ``regions``: label image(s) for
    ``feature_ablation``. ``baseline``/``raw_zero``: see ``perturb.make_baseline``.
    ``output``: attribute the target's ``"logit"`` (default) or its softmax
    ``"probability"``. Other options per :data:`BASELINE_METHODS`.
    """
    if name not in BASELINE_METHODS:
        raise BaselineError(
            f"unknown baseline method {name!r}; expected one of {list(BASELINE_METHODS)}"
        )
    unknown = set(options) - set(BASELINE_METHODS[name])
    if unknown:
        raise BaselineError(
            f"{name}: unknown option(s) {sorted(unknown)}; "
            f"accepted: {sorted(BASELINE_METHODS[name])}"
        )
    opts = {**BASELINE_METHODS[name], **options}
    if output not in ("logit", "probability"):
        raise BaselineError(f"output must be 'logit' or 'probability', got {output!r}")
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise BaselineError(
            f"x must be a normalised tensor (B, C, H, W), got {getattr(x, 'shape', x)}"
        )
    ca = _captum_attr()

    model = forward
    f = forward.field_logits if hasattr(forward, "field_logits") else forward
    if output == "probability":
        logits_fn = f

        def f(inp: torch.Tensor) -> torch.Tensor:
            return torch.softmax(logits_fn(inp), dim=1)

    x = x.detach().float().requires_grad_(True)  # captum's gradient methods need it
    tgt = torch.as_tensor(np.asarray(target), dtype=torch.long, device=x.device).reshape(-1)
    if tgt.numel() == 1 and x.shape[0] > 1:
        tgt = tgt.expand(x.shape[0])
    if tgt.shape[0] != x.shape[0]:
        raise BaselineError(f"target has {tgt.shape[0]} entries for a batch of {x.shape[0]}")
    base = make_baseline(x.detach(), baseline, raw_zero=raw_zero) if name in (
        "integrated_gradients",
        "occlusion",
        "feature_ablation",
    ) else None
    c, h, w = x.shape[1:]

    if name == "saliency":
        attr = ca.Saliency(f).attribute(x, target=tgt, abs=True)
    elif name == "input_x_gradient":
        attr = ca.InputXGradient(f).attribute(x, target=tgt)
    elif name == "integrated_gradients":
        attr = ca.IntegratedGradients(f).attribute(
            x,
            baselines=base,
            target=tgt,
            n_steps=int(opts["n_steps"]),
            internal_batch_size=int(opts["internal_batch_size"]),
        )
    elif name == "occlusion":
        win, stride = int(opts["window"]), int(opts["stride"])
        if not 0 < win <= min(h, w) or stride <= 0:
            raise BaselineError(f"occlusion: need 0 < window <= {min(h, w)} and stride > 0")
        attr = ca.Occlusion(f).attribute(
            x,
            sliding_window_shapes=(c, win, win),
            strides=(c, stride, stride),
            baselines=base,
            target=tgt,
            perturbations_per_eval=int(opts["perturbations_per_eval"]),
        )
    elif name == "feature_ablation":
        if regions is None:
            raise BaselineError(
                "feature_ablation needs regions=: a label image of nuclei, cells or worms"
            )
        attr = ca.FeatureAblation(f).attribute(
            x,
            baselines=base,
            target=tgt,
            feature_mask=_region_mask(regions, x),
            perturbations_per_eval=int(opts["perturbations_per_eval"]),
        )
    else:  # gradcam
        layer = gradcam_layer(model)
        if output == "probability":
            raise BaselineError("gradcam attributes the logit only (output='logit')")
        cam = ca.LayerGradCam(model, layer).attribute(x, target=tgt, relu_attributions=True)
        attr = ca.LayerAttribution.interpolate(cam, (h, w), interpolate_mode="bilinear")
    attr = attr.detach().float()
    # Occlusion and ablation features span all channels and captum copies each
    # feature's total to every channel: one copy is the pixel's total.
    per_pixel = attr.mean(dim=1) if name in _WHOLE_PIXEL_METHODS else attr.sum(dim=1)
    return per_pixel.cpu().numpy()

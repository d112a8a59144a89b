"""bioimage.io model packages as napari-pcim classifiers (read with ``bioimageio.spec``).

A bioimage.io model package is a folder or a ``.zip`` holding ``rdf.yaml`` (or
``bioimageio.yaml``) and the weights. :func:`read_package` validates the description
with ``bioimageio.spec`` (format 0.4 descriptions are converted to 0.5) and maps it
onto the classifier contract of :mod:`napari_pcim.classifier_meta`:

- **weights**: TorchScript only; the bytes are checked to be a TorchScript archive
  (never unpickled by Python) and loaded with ``torch.jit.load``;
- **input**: one tensor with a batch axis, an optional channel axis (its
  ``channel_names`` become the model channels) and space axes ``y`` and ``x`` in any
  order (other axes only of size 1). A fixed size is the input size; a parameterised
  size takes the test tensor's size;
- **preprocessing**: ``fixed_zero_mean_unit_variance`` and ``scale_linear`` (with a
  positive gain) fold into the contract's ``normalization`` mean/std, so the model
  sees exactly what the package defines. ``zero_mean_unit_variance`` and
  ``scale_range`` compute statistics on each input, so they run inside the module
  (per sample: per tile in ``tile`` mode, as bioimage.io runs a model on one image;
  a ``batch`` entry in their ``axes`` is ignored because napari-pcim batches tiles):
  the contract's mean/std are then 0/1 and explanations are on the raw intensity
  scale. ``ensure_dtype`` to a float type is a no-op; other steps are refused;
- **output**: one tensor shaped (batch, channel) whose ``channel_names`` are the
  classes; postprocessing only ``softmax`` (the module's logits are used) or
  ``ensure_dtype``;
- ``config.napari_pcim`` (optional) gives ``field_mode``, ``tile_overlap``, ``arch``,
  ``description`` and the model's recommended explainer options
  (:data:`~napari_pcim.classifier_meta.RECOMMENDED_KEY`); without it fields are
  tiled with a quarter-tile overlap and the methods run at their defaults.

:func:`save_package` writes a napari-pcim classifier as such a package (used by the
tests to check that a package made from a bundled model gives the same maps).
bioimageio.spec is imported only here, inside functions (~2.5 s to import).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_pcim.classifier_meta import (
    RECOMMENDED_KEY,
    ClassifierError,
    ClassifierMeta,
    check_torchscript_bytes,
)

#: Names of a package's description file (``*.bioimageio.yaml`` also counts).
YAML_NAMES = ("rdf.yaml", "bioimageio.yaml")
_FOLDED = ("fixed_zero_mean_unit_variance", "scale_linear")
_PER_SAMPLE = ("zero_mean_unit_variance", "scale_range")


def _is_yaml_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base in YAML_NAMES or base.endswith(".bioimageio.yaml")


def is_package(path: str | Path) -> bool:
    """True for a bioimage.io package: a folder/zip with ``rdf.yaml`` or the yaml itself."""
    path = Path(path)
    if path.is_dir():
        return any(_is_yaml_name(p.name) for p in path.iterdir())
    if path.is_file() and _is_yaml_name(path.name):
        return True
    if path.is_file() and path.suffix.lower() == ".zip" and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                return any(_is_yaml_name(n) and "/" not in n for n in zf.namelist())
        except (zipfile.BadZipFile, OSError):
            return False
    return False


@dataclass
class PackageModel:
    """What :func:`read_package` returns: the module to call, its metadata, the weights' sha256."""

    module: Any
    meta: ClassifierMeta
    sha256: str


def _load_description(path: Path) -> Any:
    """The package's validated v0.5 ModelDescr; ClassifierError with the first problem if not."""
    from bioimageio.spec import InvalidDescr, load_model_description
    from bioimageio.spec.model import v0_5

    source = path.parent if path.is_file() and path.suffix.lower() != ".zip" else path
    try:
        descr = load_model_description(source, format_version="latest")
    except Exception as exc:  # noqa: BLE001 -- pydantic / IO errors of a user's package
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
        if len(lines) > 1 and lines[0].endswith(":"):  # "Invalid model description:" + the errors
            lines = lines[1:]
        why = "; ".join(lines[:3]) + (f" (and {len(lines) - 3} more)" if len(lines) > 3 else "")
        raise ClassifierError(f"{path}: not a valid bioimage.io model package: {why}") from None
    if isinstance(descr, InvalidDescr) or not isinstance(descr, v0_5.ModelDescr):
        errors = getattr(getattr(descr, "validation_summary", None), "errors", None) or []
        why = f"{errors[0].loc}: {errors[0].msg}" if errors else type(descr).__name__
        raise ClassifierError(f"{path}: not a valid bioimage.io model (format 0.5) description: {why}")
    return descr


def _axis_size(axis: Any, tensor: Any, index: int, path: Path) -> int:
    """A fixed input size along ``axis``; a parameterised one from the test tensor."""
    from bioimageio.spec.model import v0_5
    from bioimageio.spec.utils import load_array

    size = axis.size
    if isinstance(size, int):
        return size
    if isinstance(size, v0_5.ParameterizedSize):
        return int(load_array(tensor.test_tensor).shape[index])
    raise ClassifierError(
        f"{path}: input axis {axis.id!r} has a size given by another tensor ({size}); "
        "napari-pcim needs a fixed or parameterised input size"
    )


def _per_channel(kwargs: Any, key: str, n: int, path: Path) -> list[float]:
    value = getattr(kwargs, key)
    if isinstance(value, int | float):
        return [float(value)] * n
    if getattr(kwargs, "axis", "channel") != "channel" or len(value) != n:
        raise ClassifierError(
            f"{path}: preprocessing {key} along axis {kwargs.axis!r} ({len(value)} values); "
            f"napari-pcim expects one value per channel ({n})"
        )
    return [float(v) for v in value]


def _reduce_axes(axes: Any) -> list[int]:
    """Dims (of a (B, C, Y, X) tensor) that a per-sample step reduces over; never batch."""
    names = ["channel", "y", "x"] if axes is None else [str(a) for a in axes if str(a) != "batch"]
    return [1 + ["channel", "y", "x"].index(a) for a in names if a in ("channel", "y", "x")]


def _preprocessing(steps: list[Any], n_ch: int, path: Path) -> tuple[list[tuple], bool]:
    """The steps as ops (("affine", scale, shift) | ("zmuv", dims, eps) | ("range", dims, lo, hi, eps)),
    and whether all of them fold into a fixed mean/std."""
    ops: list[tuple] = []
    for step in steps:
        sid, kw = str(step.id), getattr(step, "kwargs", None)
        if sid == "ensure_dtype":
            if not str(kw.dtype).startswith("float"):
                raise ClassifierError(f"{path}: preprocessing ensure_dtype {kw.dtype}: only float types are supported")
        elif sid == "fixed_zero_mean_unit_variance":
            mean, std = _per_channel(kw, "mean", n_ch, path), _per_channel(kw, "std", n_ch, path)
            ops.append(("affine", [1 / s for s in std], [-m / s for m, s in zip(mean, std)]))
        elif sid == "scale_linear":
            ops.append(("affine", _per_channel(kw, "gain", n_ch, path), _per_channel(kw, "offset", n_ch, path)))
        elif sid == "zero_mean_unit_variance":
            ops.append(("zmuv", _reduce_axes(kw.axes), float(kw.eps)))
        elif sid == "scale_range":
            if kw.reference_tensor is not None:
                raise ClassifierError(f"{path}: scale_range with a reference_tensor is not supported")
            dims = _reduce_axes(kw.axes)
            ops.append(("range", dims, kw.min_percentile / 100, kw.max_percentile / 100, float(kw.eps)))
        else:
            raise ClassifierError(
                f"{path}: input preprocessing {sid!r} is not supported; supported: "
                f"{[*_FOLDED, *_PER_SAMPLE, 'ensure_dtype']}"
            )
    foldable = all(op[0] == "affine" and all(g > 0 for g in op[1]) for op in ops)
    return ops, foldable


def _fold(ops: list[tuple], n_ch: int) -> tuple[list[float], list[float]]:
    """Compose affine ops y = a·x + b into the contract's (mean, std): x' = (x − mean) / std."""
    a, b = [1.0] * n_ch, [0.0] * n_ch
    for _, gain, offset in ops:
        a = [g * ai for g, ai in zip(gain, a)]
        b = [g * bi + o for g, bi, o in zip(gain, b, offset)]
    return [-bi / ai for ai, bi in zip(a, b)], [1 / ai for ai in a]


def _wrap(module: Any, ops: list[tuple], squeeze_channel: bool, n_extra: int, perm: list[int]) -> Any:
    """``module`` behind the per-sample preprocessing and the package's own axis order.

    On (B, C, Y, X): the ops, then the channel axis dropped when the package has none,
    size-1 axes appended for its other axes, and a permutation to its axis order.
    """
    import torch

    class Packaged(torch.nn.Module):
        """A bioimage.io model with its preprocessing, called on (B, C, Y, X)."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for op in ops:
                x = _apply(op, x)
            if squeeze_channel:
                x = x[:, 0]
            for _ in range(n_extra):
                x = x.unsqueeze(-1)
            return self.inner(x.permute(perm))

    return Packaged().eval()


def _apply(op: tuple, x: Any) -> Any:
    """One preprocessing op on a (B, C, Y, X) tensor (see :func:`_preprocessing`)."""
    import torch

    if op[0] == "affine":
        gain, offset = (torch.tensor(v, dtype=x.dtype, device=x.device).view(1, -1, 1, 1) for v in op[1:])
        return x * gain + offset
    dims = op[1]
    if op[0] == "zmuv":
        mean = x.mean(dim=dims, keepdim=True)
        std = x.std(dim=dims, keepdim=True, unbiased=False)
        return (x - mean) / (std + op[2])
    _, dims, lo, hi, eps = op
    kept = [d for d in range(4) if d not in dims]
    flat = x.permute(*kept, *dims).reshape(*(x.shape[d] for d in kept), -1)
    q = torch.quantile(flat, torch.tensor([lo, hi], dtype=x.dtype, device=x.device), dim=-1)
    shape = [x.shape[d] if d in kept else 1 for d in range(4)]
    vlo, vhi = q[0].reshape(shape), q[1].reshape(shape)
    return (x - vlo) / (vhi - vlo + eps)


def read_package(path: str | Path, device: Any) -> PackageModel:
    """Validate a bioimage.io package and map it onto the classifier contract (module docstring)."""
    import torch

    path = Path(path)
    if not path.exists():
        raise ClassifierError(f"{path}: bioimage.io package not found")
    descr = _load_description(path)
    ts = descr.weights.torchscript
    if ts is None:
        present = [k for k in type(descr.weights).model_fields if getattr(descr.weights, k) is not None]
        raise ClassifierError(
            f"{path}: the package's weights are {present}; napari-pcim runs TorchScript weights only "
            "(weights: torchscript: in rdf.yaml)"
        )
    if len(descr.inputs) != 1 or len(descr.outputs) != 1:
        raise ClassifierError(
            f"{path}: napari-pcim needs one input and one output tensor, the package has "
            f"{len(descr.inputs)} input(s) and {len(descr.outputs)} output(s)"
        )
    inp, out = descr.inputs[0], descr.outputs[0]
    kinds = {str(a.id): a for a in inp.axes}
    if "batch" not in kinds or "y" not in kinds or "x" not in kinds:
        raise ClassifierError(
            f"{path}: input {inp.id!r} has axes {list(kinds)}; napari-pcim needs batch, y and x "
            "(and optionally channel)"
        )
    extra = [a for a in inp.axes if str(a.id) not in ("batch", "channel", "y", "x")]
    for a in extra:
        if getattr(a, "size", None) != 1:
            raise ClassifierError(f"{path}: input axis {a.id!r} must have size 1 for a 2D classifier")
    channel = kinds.get("channel")
    channels = [str(c) for c in channel.channel_names] if channel is not None else [str(inp.id)]
    names = [str(a.id) for a in inp.axes]
    ours = ["batch", "channel", "y", "x"] if channel is not None else ["batch", "y", "x"]
    ours += [str(a.id) for a in extra]
    perm = [ours.index(a) for a in names]
    size = tuple(_axis_size(kinds[k], inp, names.index(k), path) for k in ("y", "x"))

    out_axes = [(str(a.id), a) for a in out.axes]
    if [a for a, _ in out_axes] != ["batch", "channel"]:
        raise ClassifierError(
            f"{path}: output {out.id!r} has axes {[a for a, _ in out_axes]}; napari-pcim needs one "
            "score per class, axes [batch, channel] with the class names as channel_names"
        )
    classes = [str(c) for c in out_axes[1][1].channel_names]
    post = [str(p.id) for p in out.postprocessing if str(p.id) not in ("ensure_dtype", "softmax")]
    if post:
        raise ClassifierError(
            f"{path}: output postprocessing {post} is not supported (only softmax or ensure_dtype: "
            "napari-pcim explains the model's logits)"
        )

    ops, foldable = _preprocessing(list(inp.preprocessing), len(channels), path)
    mean, std = _fold(ops, len(channels)) if foldable else ([0.0] * len(channels), [1.0] * len(channels))
    config = (descr.config.model_extra or {}).get("napari_pcim", {}) or {}
    recommended = {RECOMMENDED_KEY: config[RECOMMENDED_KEY]} if config.get(RECOMMENDED_KEY) else {}
    data = ts.get_reader().read()
    check_torchscript_bytes(data, f"{path} (weights {ts.source})")
    sha256 = hashlib.sha256(data).hexdigest()
    if ts.sha256 is not None and str(ts.sha256) != sha256:
        raise ClassifierError(f"corrupt model file {path}: weights {ts.source} fail their sha256 check")
    meta = ClassifierMeta.from_dict(
        {
            "channels": channels,
            "input_size": list(size),
            "normalization": {"mean": mean, "std": std},
            "classes": classes,
            "field_mode": config.get("field_mode", "tile"),
            "tile_overlap": config.get("tile_overlap", min(size) // 4),
            "arch": config.get("arch", str(descr.name)),
            "description": config.get("description", str(descr.description).splitlines()[0] if descr.description else ""),
            "bioimageio": {
                "name": str(descr.name), "id": str(descr.id) if descr.id else None,
                "preprocessing": [str(s.id) for s in inp.preprocessing],
                "normalised_in_module": not foldable,
            },
            **recommended,
        },
        source=f"{path} (bioimage.io package)",
    )
    try:
        module = torch.jit.load(io.BytesIO(data), map_location=device)
    except Exception as exc:
        raise ClassifierError(f"{path}: torch.jit.load of weights {ts.source} failed: {exc}") from exc
    module.eval()
    if not foldable or names != ["batch", "channel", "y", "x"]:
        module = _wrap(module, [] if foldable else ops, channel is None, len(extra), perm)
    return PackageModel(module, meta, sha256)


def save_package(model: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write the napari-pcim classifier file ``model`` as a bioimage.io package zip ``out``.

    Built with bioimageio.spec's own model description classes and saved with
    ``save_bioimageio_package_to_stream`` (validated on the way): TorchScript weights
    (re-saved without napari-pcim's embedded JSON), input axes batch/channel/y/x with the
    channel names, ``fixed_zero_mean_unit_variance`` from the normalisation, output
    (batch, channel) named by the classes, seeded test tensors, and ``config.napari_pcim``
    with the field mode. Written atomically; an existing ``out`` needs ``overwrite``.
    """
    import tempfile

    import numpy as np
    import torch
    from bioimageio.spec import save_bioimageio_package_to_stream
    from bioimageio.spec.model import v0_5 as bm

    from napari_pcim import atomic
    from napari_pcim.classifier_meta import read_metadata

    model, out = Path(model), Path(out)
    if out.exists() and not overwrite:
        raise ClassifierError(f"{out}: already exists; not overwritten")
    meta = read_metadata(model)
    recommended = {RECOMMENDED_KEY: meta.extra[RECOMMENDED_KEY]} if meta.extra.get(RECOMMENDED_KEY) else {}
    module = torch.jit.load(str(model), map_location="cpu").eval()
    h, w = meta.input_size
    rng = np.random.default_rng(0)
    raw = (np.array(meta.mean)[:, None, None] + np.array(meta.std)[:, None, None]
           * rng.standard_normal((len(meta.channels), h, w)))[None].astype("float32")
    x = (torch.from_numpy(raw) - torch.tensor(meta.mean).view(1, -1, 1, 1)) / torch.tensor(meta.std).view(1, -1, 1, 1)
    with torch.inference_mode():
        logits = module(x.float()).numpy().astype("float32")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        torch.jit.save(module, str(d / "weights.pt"))
        np.save(d / "test_input.npy", raw)
        np.save(d / "test_output.npy", logits)
        (d / "README.md").write_text(f"# {model.stem}\n\n{meta.description or 'A napari-pcim classifier.'}\n")
        names = [bm.Identifier(c) for c in meta.channels]
        descr = bm.ModelDescr(
            name=model.stem.replace("_", " "),
            description=meta.description or f"napari-pcim classifier {model.stem}",
            authors=[bm.Author(name="napari-pcim")],
            cite=[bm.CiteEntry(text="napari-pcim", url="https://github.com/napari-pcim/napari-pcim")],
            license="BSD-3-Clause",
            documentation=bm.FileDescr(source=d / "README.md"),
            inputs=[bm.InputTensorDescr(
                id=bm.TensorId("raw"),
                axes=[bm.BatchAxis(), bm.ChannelAxis(channel_names=names),
                      bm.SpaceInputAxis(id=bm.AxisId("y"), size=h), bm.SpaceInputAxis(id=bm.AxisId("x"), size=w)],
                test_tensor=bm.FileDescr(source=d / "test_input.npy"),
                preprocessing=[bm.FixedZeroMeanUnitVarianceDescr(
                    kwargs=bm.FixedZeroMeanUnitVarianceAlongAxisKwargs(
                        mean=meta.mean, std=meta.std, axis=bm.AxisId("channel")))],
            )],
            outputs=[bm.OutputTensorDescr(
                id=bm.TensorId("logits"),
                axes=[bm.BatchAxis(), bm.ChannelAxis(channel_names=[bm.Identifier(c) for c in meta.classes])],
                test_tensor=bm.FileDescr(source=d / "test_output.npy"),
            )],
            weights=bm.WeightsDescr(torchscript=bm.TorchscriptWeightsDescr(
                source=d / "weights.pt", pytorch_version=torch.__version__.split("+")[0])),
            config={"napari_pcim": {"field_mode": meta.field_mode, "tile_overlap": meta.tile_overlap,
                                    "arch": meta.arch, "description": meta.description,
                                    **recommended}},
        )
        stream = io.BytesIO()
        save_bioimageio_package_to_stream(descr, output_stream=stream)
    return atomic.write_bytes(out, stream.getvalue(), overwrite=overwrite)

"""The classifier contract: TorchScript files with napari-pcim metadata.

A classifier is a TorchScript module mapping float32 ``(B, C, h, w)`` to logits
``(B, K)``. What napari-pcim needs to use it (channel names and order, input
size, normalisation, class names, how to handle fields bigger than the input)
travels *inside* the archive as JSON in ``_extra_files["napari_pcim.json"]``.
A sidecar ``<model file>.json`` beside the file is accepted for archives saved
without it; when both exist **the archive wins** (it cannot drift away from the
weights) and a warning names the ignored sidecar.

Safety: a user's file is never unpickled with Python's pickle. The loader first
checks that the file is a TorchScript zip archive (``code/``, ``constants.pkl``,
``data.pkl``) and only then calls ``torch.jit.load``, whose C++ unpickler only
builds TorchScript types. ``torch.load`` is never called.

Main entry points: :func:`load_classifier`, :class:`Classifier`,
:func:`save_classifier`, :func:`bundled_models`; the metadata side
(:class:`ClassifierMeta`, :func:`read_metadata`) lives in
:mod:`napari_pcim.classifier_meta` and is re-exported here.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from napari_pcim.classifier_meta import (
    FIELD_MODES,
    MANIFEST_NAME,
    METADATA_NAME,
    SAVED_WITH,
    ClassifierError,
    ClassifierMeta,
    check_torchscript_file,
    jit_load_hint,
    read_metadata,
    verify_archive,
)
from napari_pcim.devices import resolve_device
from napari_pcim.tiling import TilePlan

__all__ = [
    "FIELD_MODES",
    "METADATA_NAME",
    "Classifier",
    "ClassifierError",
    "ClassifierMeta",
    "bundled_model_path",
    "bundled_models",
    "load_classifier",
    "read_metadata",
    "resolve_model_path",
    "save_classifier",
]


@contextmanager
def _quiet_jit() -> Iterator[None]:
    """Silence torch's DeprecationWarnings about TorchScript (we rely on it on purpose)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=DeprecationWarning)
        yield


# --------------------------------------------------------------------------- classifier


def _dry_forward(module: torch.nn.Module, meta: ClassifierMeta, device: torch.device, source: str) -> None:
    """Run one forward on zeros (batch 2) and check logits are shaped (2, len(classes))."""
    h, w = meta.input_size
    x = torch.zeros(2, len(meta.channels), h, w, device=device)
    try:
        with torch.inference_mode():
            out = module(x)
    except Exception as exc:  # any failure of user code is reported as a ClassifierError
        raise ClassifierError(
            f"{source}: forward pass on zeros of shape {tuple(x.shape)} "
            f"(batch, channels {meta.channels}, input_size) failed: {exc}"
        ) from exc
    if not isinstance(out, torch.Tensor) or out.shape != (2, len(meta.classes)):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ClassifierError(
            f"{source}: the model must return logits shaped (batch, {len(meta.classes)}) "
            f"for classes {meta.classes}; on input {tuple(x.shape)} it returned {got}"
        )


def _match_channels(model_channels: Sequence[str], plate_channels: Sequence[str], source: str) -> list[int]:
    """Indices into ``plate_channels`` for each model channel (exact, then case-insensitive)."""
    plate = list(plate_channels)
    lower = [p.lower() for p in plate]
    indices, missing = [], []
    for name in model_channels:
        if name in plate:
            indices.append(plate.index(name))
        elif lower.count(name.lower()) == 1:
            indices.append(lower.index(name.lower()))
        else:
            missing.append(name)
    if missing:
        raise ClassifierError(
            f"{source}: the model needs channel(s) {missing} that the plate does not have; "
            f"model channels (in order): {list(model_channels)}; plate channels: {plate}"
        )
    return indices


def _check_float32(x: torch.Tensor, raw: np.ndarray) -> None:
    """ValueError naming the first field and channel whose normalised float32 values are not finite."""
    bad = ~torch.isfinite(x.reshape(-1, *x.shape[-3:])).flatten(2).all(dim=2)  # (N, C)
    if not bool(bad.any()):
        return
    n, c = (int(i) for i in bad.nonzero()[0])
    raise ClassifierError(
        f"field {n}, channel {c}: values are not finite in float32 after normalisation "
        f"(NaN, inf, or beyond ±{float(np.finfo(np.float32).max):.3g}; input dtype {raw.dtype}); "
        "rescale or clean the field"
    )


class Classifier:
    """A loaded TorchScript classifier plus its metadata.

    Attributes: ``module`` (TorchScript, eval mode), ``meta`` (:class:`ClassifierMeta`),
    ``path``, ``sha256`` (of the file), ``device``.
    """

    def __init__(self, module: torch.jit.ScriptModule, meta: ClassifierMeta, path: Path, sha256: str,
                 device: torch.device) -> None:
        self.module = module
        self.meta = meta
        self.path = path
        self.sha256 = sha256
        self.device = device
        mean = torch.tensor(meta.mean, dtype=torch.float32).view(-1, 1, 1)
        std = torch.tensor(meta.std, dtype=torch.float32).view(-1, 1, 1)
        self._mean, self._std = mean, std

    def __repr__(self) -> str:
        return (
            f"Classifier({self.path.name!r}, arch={self.meta.arch!r}, channels={self.meta.channels}, "
            f"classes={self.meta.classes}, input_size={list(self.meta.input_size)}, "
            f"field_mode={self.meta.field_mode!r}, device={str(self.device)!r})"
        )

    @property
    def classes(self) -> list[str]:
        return list(self.meta.classes)

    def to(self, device: str | torch.device) -> Classifier:
        """Move the module to ``device`` ("auto", "cpu", "cuda:0", ...) in place; returns self."""
        self.device = resolve_device(device)
        self.module.to(self.device)
        return self

    def channel_indices(self, plate_channels: Sequence[str]) -> list[int]:
        """Indices of the model's channels, in model order, within ``plate_channels``."""
        return _match_channels(self.meta.channels, plate_channels, str(self.path))

    def prepare(self, field: np.ndarray, plate_channels: Sequence[str] | None = None) -> torch.Tensor:
        """Raw field(s) → normalised float32 tensor on :attr:`device`, channels in model order.

        ``field`` is (C, Y, X) or (N, C, Y, X). Without ``plate_channels`` the
        channels must already be the model's, in its order.
        """
        arr = np.asarray(field)
        if arr.ndim not in (3, 4) or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ClassifierError(
                f"expected a numeric field shaped (C, Y, X) or (N, C, Y, X), "
                f"got shape {arr.shape} dtype {arr.dtype}"
            )
        caxis = arr.ndim - 3
        if plate_channels is not None:
            if len(plate_channels) != arr.shape[caxis]:
                raise ClassifierError(
                    f"field has {arr.shape[caxis]} channel(s) but {len(plate_channels)} plate "
                    f"channel names were given: {list(plate_channels)}"
                )
            arr = np.take(arr, self.channel_indices(plate_channels), axis=caxis)
        elif arr.shape[caxis] != len(self.meta.channels):
            raise ClassifierError(
                f"field has {arr.shape[caxis]} channel(s) but {self.path.name} expects "
                f"{len(self.meta.channels)}: {self.meta.channels}; pass plate_channels= to reorder"
            )
        with np.errstate(over="ignore"):  # an overflow becomes inf, refused just below
            x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        x = (x - self._mean) / self._std
        _check_float32(x, arr)
        return x.to(self.device)

    def field_logits(self, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Logits (B, K) of normalised fields (B, C, Y, X) of any size; differentiable.

        At the input size this is a plain forward. Otherwise ``field_mode``
        decides: ``"resize"`` resizes bilinearly to the input size; ``"tile"``
        averages the logits of the input-size tiles of :class:`~napari_pcim.tiling.TilePlan`
        (overlapping by ``tile_overlap``; a field smaller than a tile along an
        axis is first resized up to the tile size along that axis). With
        ``batch_size`` at most that many tiles go through the model at once, cut
        from the fields chunk by chunk, so memory does not grow with the field.
        """
        if x.ndim != 4 or x.shape[1] != len(self.meta.channels):
            raise ClassifierError(
                f"field_logits expects (B, {len(self.meta.channels)}, Y, X), got {tuple(x.shape)}"
            )
        plan = TilePlan.for_classifier(self.meta, tuple(x.shape[-2:]))
        if plan.mode == "tile":
            tiles = plan.tiles(x)
            step = batch_size or len(tiles)
            logits = torch.cat([self._forward(tiles[i : i + step]) for i in range(0, len(tiles), step)])
            return logits.reshape(x.shape[0], plan.n_tiles, -1).mean(dim=1)
        if plan.mode == "resize":
            x = F.interpolate(x, size=plan.tile, mode="bilinear", align_corners=False)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The module's forward; an error raised inside the model names this model file.

        A model that fails only on real data (its dry run on zeros passed at load) is
        the model's problem, not a napari-pcim bug: it becomes a ClassifierError.
        Out-of-memory errors pass through unchanged (callers retry or report them).
        """
        try:
            return self.module(x)
        except (RuntimeError, torch.jit.Error) as exc:
            text = str(exc)
            if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text.lower() or (
                "can't allocate memory" in text
            ):
                raise
            lines = [line.strip() for line in text.splitlines() if line.strip()] or [type(exc).__name__]
            # TorchScript puts the model's own exception on the last line of its report.
            reason = lines[-1] if isinstance(exc, torch.jit.Error) else lines[0]
            raise ClassifierError(
                f"the classifier {self.path} raised an error on an input of shape {tuple(x.shape)}: {reason}"
            ) from exc

    def raw_zero(self, device: str | torch.device | None = None) -> torch.Tensor:
        """Zero raw intensity in normalised units (C,), float32 on ``device`` (default: the model's)."""
        return torch.tensor(self.meta.raw_zero(), dtype=torch.float32, device=device or self.device)

    def predict_proba(
        self,
        fields: np.ndarray | Sequence[np.ndarray],
        plate_channels: Sequence[str] | None = None,
        batch_size: int = 16,
    ) -> np.ndarray:
        """Class probabilities (N, K) of raw field(s): (C,Y,X), (N,C,Y,X) or a list of fields.

        Up to ``batch_size`` fields of one shape, and at most ``batch_size`` tiles,
        go through the model at once. NaN or inf logits raise ValueError naming the
        field (0-based) and this model file.
        """
        if isinstance(fields, np.ndarray):
            items = [fields] if fields.ndim == 3 else list(fields)
        else:
            items = list(fields)
        out = []
        with torch.inference_mode():
            i = 0
            while i < len(items):
                # batch consecutive fields of the same shape together
                j = i + 1
                while j < len(items) and j - i < batch_size and np.shape(items[j]) == np.shape(items[i]):
                    j += 1
                x = self.prepare(np.stack(items[i:j]), plate_channels)
                logits = self.field_logits(x, batch_size=batch_size).float()
                self.check_logits(logits, [f"field {k}" for k in range(i, j)], "predict_proba")
                out.append(torch.softmax(logits, dim=1).cpu().numpy())
                i = j
        if not out:
            return np.zeros((0, len(self.meta.classes)), dtype=np.float32)
        return np.concatenate(out)

    def check_logits(self, logits: torch.Tensor, names: Sequence[str], stage: str) -> None:
        """ValueError unless ``logits`` (one row per ``names`` entry) are all finite.

        The message names the first bad row's field, this model file and the stage:
        ``the classifier m.pt returned NaN logits for B03 f0 on its own input (probability pass)``.
        """
        finite = torch.isfinite(logits).reshape(logits.shape[0], -1).all(dim=1)
        if bool(finite.all()):
            return
        row = int((~finite).nonzero()[0, 0])
        kind = "NaN" if bool(torch.isnan(logits[row]).any()) else "infinite"
        raise ValueError(
            f"the classifier {self.path} returned {kind} logits for {names[row]} on its own input ({stage})"
        )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _bundled_manifest(path: Path) -> Path | None:
    """The checksum manifest that covers ``path`` when it is a bundled model, else None."""
    root = _bundled_dir()
    return root / MANIFEST_NAME if path.resolve().parent == root.resolve() else None


def load_classifier(
    path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    channels: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Classifier:
    """Load a classifier, checking it works: a TorchScript file with napari-pcim metadata,
    or a bioimage.io model package (a folder or ``.zip`` with ``rdf.yaml`` and TorchScript
    weights, see :mod:`napari_pcim.bioimageio_package`).

    ``channels``: the plate's channel names; when given, every model channel must
    be among them. ``metadata``: the metadata dict to use for a TorchScript file that
    carries none (e.g. from the Model dock's form, checked before its sidecar is
    written). Raises :class:`ClassifierError` on any problem.
    """
    path = Path(path).expanduser()
    dev = resolve_device(device)
    source = str(path)
    from napari_pcim.bioimageio_package import is_package, read_package

    if is_package(path):
        package = read_package(path, dev)
        module, meta, sha256 = package.module, package.meta, package.sha256
        if channels is not None:
            _match_channels(meta.channels, channels, source)
    else:
        if metadata is not None:
            check_torchscript_file(path)
            meta = ClassifierMeta.from_dict(metadata, source=f"{path} (given metadata)")
        else:
            meta = read_metadata(path)  # also checks the file is a TorchScript archive
        sha256 = verify_archive(path, _bundled_manifest(path))
        if channels is not None:
            _match_channels(meta.channels, channels, source)
        try:
            with _quiet_jit():
                module = torch.jit.load(str(path), map_location=dev)
        except Exception as exc:  # torch raises RuntimeError and friends for corrupt archives
            first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
            raise ClassifierError(f"{path}: torch.jit.load failed{jit_load_hint(exc, meta)}: "
                                  f"{first.strip()}") from exc
    module.eval()
    if meta.has_localize and not hasattr(module, "localize"):
        raise ClassifierError(
            f"{path}: metadata says has_localize=true but the module has no 'localize' method "
            "(export it with @torch.jit.export)"
        )
    _dry_forward(module, meta, dev, source)
    return Classifier(module, meta, path, sha256, dev)


def save_classifier(
    module: torch.nn.Module,
    meta: ClassifierMeta | dict[str, Any],
    path: str | os.PathLike,
) -> Path:
    """Script ``module`` if needed, check it against ``meta``, and save it atomically.

    The metadata is embedded as ``_extra_files["napari_pcim.json"]``. Returns the path.
    """
    path = Path(path)
    if not isinstance(meta, ClassifierMeta):
        meta = ClassifierMeta.from_dict(meta, source="save_classifier")
    with _quiet_jit():
        if isinstance(module, torch.jit.ScriptModule):
            scripted = module
        else:
            try:
                scripted = torch.jit.script(module)
            except Exception as exc:
                raise ClassifierError(
                    f"cannot script {type(module).__name__} ({exc}); trace it yourself with "
                    "torch.jit.trace(model.eval(), example) and pass the traced module"
                ) from exc
        scripted.eval()
        cpu = torch.device("cpu")
        scripted.to(cpu)
        _dry_forward(scripted, meta, cpu, f"save_classifier({path.name})")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            torch.jit.save(
                scripted, tmp, _extra_files={METADATA_NAME: json.dumps(
                    {**meta.to_dict(), SAVED_WITH: {"torch": torch.__version__}}, indent=1)}
            )
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; use normal file permissions
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


# --------------------------------------------------------------------------- bundled models


def _bundled_dir() -> Path:
    return Path(str(files("napari_pcim").joinpath("data", "models")))


def bundled_models() -> dict[str, Path]:
    """The demo classifiers shipped with napari-pcim: {name: path}, e.g. ``"foci_vgg"``."""
    root = _bundled_dir()
    if not root.is_dir():
        return {}
    return {p.stem: p for p in sorted(root.glob("*.pt"))}


def resolve_model_path(model: str | os.PathLike) -> Path:
    """A file path as given, else a bundled model's name (``"foci_vgg"``).

    Anything that looks like a path (exists, has a suffix or a folder) stays a path, so
    :func:`load_classifier` reports a missing file by its name.
    """
    path = Path(model).expanduser()
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path
    return bundled_model_path(str(model))


def bundled_model_path(name: str) -> Path:
    """Path of a bundled model by name (``"foci_vgg"`` or ``"foci_vgg.pt"``)."""
    models = bundled_models()
    key = name.removesuffix(".pt")
    if key not in models:
        raise ClassifierError(
            f"no bundled model named {name!r}; available: {sorted(models) or 'none'}"
        )
    return models[key]

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
:func:`save_classifier`, :func:`read_metadata`, :func:`bundled_models`,
:func:`tile_starts`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from napari_pcim.devices import resolve_device

METADATA_NAME = "napari_pcim.json"
FIELD_MODES = ("resize", "tile")
_REQUIRED_KEYS = ("channels", "input_size", "normalization", "classes")


class ClassifierError(ValueError):
    """A classifier file or its metadata cannot be used; the message says why."""


@contextmanager
def _quiet_jit() -> Iterator[None]:
    """Silence torch's DeprecationWarnings about TorchScript (we rely on it on purpose)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=DeprecationWarning)
        yield


# --------------------------------------------------------------------------- metadata


@dataclass
class ClassifierMeta:
    """Validated napari-pcim metadata of a classifier (see docs/models.md)."""

    channels: list[str]
    input_size: tuple[int, int]
    mean: list[float]
    std: list[float]
    classes: list[str]
    field_mode: str = "resize"
    tile_overlap: int = 0
    has_localize: bool = False
    arch: str = "unknown"
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, source: str = "metadata") -> ClassifierMeta:
        """Validate a metadata dict; errors name the ``source``, the key and what was expected."""

        def fail(key: str, expected: str, got: Any) -> ClassifierError:
            return ClassifierError(
                f"{source}: metadata key {key!r} must be {expected}, got {got!r}"
            )

        if not isinstance(data, dict):
            raise ClassifierError(f"{source}: metadata must be a JSON object, got {type(data).__name__}")
        missing = [k for k in _REQUIRED_KEYS if k not in data]
        if missing:
            raise ClassifierError(
                f"{source}: metadata is missing required key(s) {missing}; "
                f"required: {list(_REQUIRED_KEYS)}"
            )

        def names(key: str, min_len: int) -> list[str]:
            value = data[key]
            if (
                not isinstance(value, list)
                or len(value) < min_len
                or not all(isinstance(v, str) and v.strip() for v in value)
            ):
                raise fail(key, f"a list of at least {min_len} non-empty strings", value)
            if len(set(value)) != len(value):
                raise fail(key, "a list of unique names", value)
            return list(value)

        channels = names("channels", 1)
        classes = names("classes", 2)

        size = data["input_size"]
        if (
            not isinstance(size, list | tuple)
            or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
        ):
            raise fail("input_size", "[height, width] of two positive integers", size)

        norm = data["normalization"]
        if not isinstance(norm, dict) or "mean" not in norm or "std" not in norm:
            raise fail("normalization", 'an object {"mean": [...], "std": [...]}', norm)
        stats = {}
        for key in ("mean", "std"):
            values = norm[key]
            if (
                not isinstance(values, list)
                or len(values) != len(channels)
                or not all(
                    isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                    for v in values
                )
            ):
                raise fail(
                    f"normalization.{key}",
                    f"a list of {len(channels)} finite numbers (one per channel)",
                    values,
                )
            stats[key] = [float(v) for v in values]
        if any(s <= 0 for s in stats["std"]):
            raise fail("normalization.std", "strictly positive numbers", norm["std"])

        mode = data.get("field_mode", "resize")
        if mode not in FIELD_MODES:
            raise fail("field_mode", f"one of {list(FIELD_MODES)}", mode)
        overlap = data.get("tile_overlap", 0)
        if (
            not isinstance(overlap, int)
            or isinstance(overlap, bool)
            or overlap < 0
            or overlap >= min(size)
        ):
            raise fail("tile_overlap", f"an integer in [0, {min(size) - 1}] (pixels)", overlap)
        has_localize = data.get("has_localize", False)
        if not isinstance(has_localize, bool):
            raise fail("has_localize", "true or false", has_localize)
        arch = data.get("arch", "unknown")
        description = data.get("description", "")
        for key, value in (("arch", arch), ("description", description)):
            if not isinstance(value, str):
                raise fail(key, "a string", value)

        known = {*_REQUIRED_KEYS, "field_mode", "tile_overlap", "has_localize", "arch", "description"}
        return cls(
            channels=channels,
            input_size=(int(size[0]), int(size[1])),
            mean=stats["mean"],
            std=stats["std"],
            classes=classes,
            field_mode=mode,
            tile_overlap=overlap,
            has_localize=has_localize,
            arch=arch,
            description=description,
            extra={k: v for k, v in data.items() if k not in known},
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able metadata dict (the inverse of :meth:`from_dict`)."""
        out = asdict(self)
        extra = out.pop("extra")
        out["input_size"] = list(self.input_size)
        out["normalization"] = {"mean": out.pop("mean"), "std": out.pop("std")}
        return {**out, **extra}


def _archive_entries(path: Path) -> list[str]:
    """Entry names of a TorchScript zip archive, or ClassifierError if it is not one."""
    if not path.exists():
        raise ClassifierError(f"{path}: classifier file not found")
    if not path.is_file():
        raise ClassifierError(f"{path}: not a file")
    if not zipfile.is_zipfile(path):
        raise ClassifierError(
            f"{path}: not a TorchScript archive (not a zip file). Export the model with "
            "torch.jit.script(model) or torch.jit.trace(model, x) and save it with "
            "napari_pcim.classifier.save_classifier()"
        )
    try:
        with zipfile.ZipFile(path) as zf:
            entries = zf.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ClassifierError(f"{path}: unreadable zip archive ({exc})") from exc
    has = {
        key: any(re.fullmatch(rf"[^/]+/{pattern}", name) for name in entries)
        for key, pattern in (
            ("code", r"code/.+"),
            ("constants", r"constants\.pkl"),
            ("data", r"data\.pkl"),
        )
    }
    if not all(has.values()):
        hint = (
            " It looks like a torch.save() checkpoint (e.g. a state_dict); napari-pcim does not "
            "unpickle those. Rebuild the model, load the weights yourself, then export it with "
            "torch.jit.script() and save_classifier()."
            if has["data"]
            else ""
        )
        lacking = [k for k, ok in has.items() if not ok]
        raise ClassifierError(
            f"{path}: not a TorchScript archive (missing {lacking} entries).{hint}"
        )
    return entries


def read_metadata(path: str | os.PathLike) -> ClassifierMeta:
    """Read and validate a classifier's metadata without loading the module.

    The archive's ``napari_pcim.json`` wins over a sidecar ``<path>.json``; the
    sidecar is used only when the archive carries none.
    """
    path = Path(path)
    entries = _archive_entries(path)
    sidecar = path.with_name(path.name + ".json")
    inner = [n for n in entries if re.fullmatch(rf"[^/]+/extra/{re.escape(METADATA_NAME)}", n)]
    if inner:
        with zipfile.ZipFile(path) as zf:
            raw = zf.read(inner[0])
        source = f"{path} (embedded {METADATA_NAME})"
        if sidecar.exists():
            warnings.warn(
                f"{sidecar} ignored: {path} carries its own {METADATA_NAME}, which takes precedence",
                UserWarning,
                stacklevel=2,
            )
    elif sidecar.exists():
        raw = sidecar.read_bytes()
        source = str(sidecar)
    else:
        raise ClassifierError(
            f"{path}: no napari-pcim metadata: the archive has no _extra_files[{METADATA_NAME!r}] "
            f"and there is no sidecar {sidecar.name}. See docs/models.md for the keys "
            f"(required: {list(_REQUIRED_KEYS)})"
        )
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClassifierError(f"{source}: metadata is not valid JSON ({exc})") from exc
    return ClassifierMeta.from_dict(data, source=source)


# --------------------------------------------------------------------------- tiling


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
        x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        x = (x - self._mean) / self._std
        return x.to(self.device)

    def field_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, K) of normalised fields (B, C, Y, X) of any size; differentiable.

        At the input size this is a plain forward. Otherwise ``field_mode``
        decides: ``"resize"`` resizes bilinearly to the input size; ``"tile"``
        averages the logits of input-size tiles overlapping by ``tile_overlap``
        (see :func:`tile_starts`); a field smaller than a tile along an axis is
        first resized up to the tile size along that axis.
        """
        if x.ndim != 4 or x.shape[1] != len(self.meta.channels):
            raise ClassifierError(
                f"field_logits expects (B, {len(self.meta.channels)}, Y, X), got {tuple(x.shape)}"
            )
        h, w = self.meta.input_size
        Y, X = x.shape[-2:]
        if (Y, X) == (h, w):
            return self.module(x)
        if self.meta.field_mode == "resize":
            return self.module(F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False))
        if Y < h or X < w:
            Y, X = max(Y, h), max(X, w)
            x = F.interpolate(x, size=(Y, X), mode="bilinear", align_corners=False)
        ys = tile_starts(Y, h, self.meta.tile_overlap)
        xs = tile_starts(X, w, self.meta.tile_overlap)
        tiles = torch.stack([x[:, :, y : y + h, x0 : x0 + w] for y in ys for x0 in xs], dim=1)
        B, T = tiles.shape[:2]
        logits = self.module(tiles.reshape(B * T, *tiles.shape[2:]))
        return logits.reshape(B, T, -1).mean(dim=1)

    def predict_proba(
        self,
        fields: np.ndarray | Sequence[np.ndarray],
        plate_channels: Sequence[str] | None = None,
        batch_size: int = 16,
    ) -> np.ndarray:
        """Class probabilities (N, K) of raw field(s): (C,Y,X), (N,C,Y,X) or a list of fields."""
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
                out.append(torch.softmax(self.field_logits(x), dim=1).float().cpu().numpy())
                i = j
        if not out:
            return np.zeros((0, len(self.meta.classes)), dtype=np.float32)
        return np.concatenate(out)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_classifier(
    path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    channels: Sequence[str] | None = None,
) -> Classifier:
    """Load a TorchScript classifier with its napari-pcim metadata, checking it works.

    ``channels``: the plate's channel names; when given, every model channel must
    be among them. Raises :class:`ClassifierError` on any problem.
    """
    path = Path(path).expanduser()
    meta = read_metadata(path)  # also checks the file is a TorchScript archive
    dev = resolve_device(device)
    source = str(path)
    if channels is not None:
        _match_channels(meta.channels, channels, source)
    try:
        with _quiet_jit():
            module = torch.jit.load(str(path), map_location=dev)
    except Exception as exc:  # torch raises RuntimeError and friends for corrupt archives
        raise ClassifierError(f"{path}: torch.jit.load failed: {exc}") from exc
    module.eval()
    if meta.has_localize and not hasattr(module, "localize"):
        raise ClassifierError(
            f"{path}: metadata says has_localize=true but the module has no 'localize' method "
            "(export it with @torch.jit.export)"
        )
    _dry_forward(module, meta, dev, source)
    return Classifier(module, meta, path, _sha256(path), dev)


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
                scripted, tmp, _extra_files={METADATA_NAME: json.dumps(meta.to_dict(), indent=1)}
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
    key = name[:-3] if name.endswith(".pt") else name
    if key not in models:
        raise ClassifierError(
            f"no bundled model named {name!r}; available: {sorted(models) or 'none'}"
        )
    return models[key]

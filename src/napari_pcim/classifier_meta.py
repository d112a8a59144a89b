"""Classifier metadata: the JSON a napari-pcim classifier carries, read and validated.

:class:`ClassifierMeta` is the validated metadata (channels, input size,
normalisation, classes, field mode); :func:`read_metadata` reads it from a
TorchScript archive (embedded ``napari_pcim.json``, else a sidecar
``<model file>.json``) without loading the module; :func:`verify_archive` checks
the archive's CRCs and, for bundled models, the sha256 recorded in ``SHA256SUMS``.
No torch import here.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import warnings
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

METADATA_NAME = "napari_pcim.json"
#: Metadata key of a model's recommended explainer options, ``{method: {option: value}}``
#: (read by :mod:`napari_pcim.explainers.recommended`).
RECOMMENDED_KEY = "explainer_options"
#: How fields of another size than the input are scored (docs/models.md).
FieldMode = Literal["resize", "tile"]
FIELD_MODES: tuple[str, ...] = get_args(FieldMode)
_REQUIRED_KEYS = ("channels", "input_size", "normalization", "classes")
#: An example sidecar, quoted by the missing-metadata error (and docs/models.md).
SIDECAR_EXAMPLE: dict[str, Any] = {
    "channels": ["DAPI", "GFP"],
    "input_size": [128, 128],
    "normalization": {"mean": [300.0, 250.0], "std": [100.0, 80.0]},
    "classes": ["control", "treated"],
    "field_mode": "tile",
    "tile_overlap": 32,
}


class ClassifierError(ValueError):
    """A classifier file or its metadata cannot be used; the message says why."""


class MissingMetadataError(ClassifierError):
    """A TorchScript file with no napari-pcim metadata; ``sidecar`` is where it can go."""

    def __init__(self, message: str, path: Path, sidecar: Path) -> None:
        super().__init__(message)
        self.path, self.sidecar = path, sidecar


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

    def raw_zero(self) -> list[float]:
        """Zero raw intensity in normalised units, per channel: ``-mean / std``."""
        return [-m / s for m, s in zip(self.mean, self.std)]


#: Metadata key under which :func:`napari_pcim.classifier.save_classifier` records the
#: torch that wrote the file: ``{"torch": "2.13.0+cpu"}``.
SAVED_WITH = "saved_with"


def jit_load_hint(exc: BaseException, meta: ClassifierMeta) -> str:
    """What to do when ``torch.jit.load`` fails with ``exc``, or "" when there is no advice.

    TorchScript files carry the code of the torch that wrote them; an older torch fails
    with "Unknown builtin op" on operators it lacks (seen: a model saved by torch 2.13,
    whose ``F.interpolate`` calls ``_upsample_lanczos2d_aa``, in torch 2.11)."""
    if "unknown builtin op" not in str(exc).lower():
        return ""
    import torch

    saved_with = meta.extra.get(SAVED_WITH)
    saved = saved_with.get("torch") if isinstance(saved_with, dict) else None
    by = f"it was saved by torch {saved}" if saved else "it was probably saved by a newer torch"
    return (f" ({by}, and this is torch {torch.__version__}: a TorchScript file loads only in "
            "the torch that wrote it or a newer one; upgrade torch, or re-export the model "
            "with this torch)")


#: The bundled models' checksums, in ``sha256sum`` format (``sha256sum *.pt > SHA256SUMS``).
MANIFEST_NAME = "SHA256SUMS"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def recorded_sha256(manifest: Path) -> dict[str, str]:
    """``{file name: sha256}`` of a ``sha256sum``-format manifest; ClassifierError if unreadable."""
    try:
        pairs = [ln.split(None, 1) for ln in manifest.read_text().splitlines() if ln.strip()]
        return {name.lstrip("*"): digest for digest, name in pairs}
    except (OSError, ValueError) as exc:
        raise ClassifierError(f"{manifest}: unreadable model checksum manifest ({exc})") from exc


def verify_archive(path: Path, manifest: Path | None = None) -> str:
    """Check every entry's CRC (and the sha256 in ``manifest`` when given); return the sha256.

    A failure is a ClassifierError starting "corrupt model file <path>".
    """
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise ClassifierError(f"corrupt model file {path}: {exc}") from exc
    if bad is not None:
        raise ClassifierError(f"corrupt model file {path}: entry {bad} fails its CRC check")
    digest = _file_sha256(path)
    if manifest is not None:
        expected = recorded_sha256(manifest).get(path.name)
        if expected is None:
            raise ClassifierError(f"corrupt model file {path}: no sha256 recorded in {manifest}")
        if expected != digest:
            raise ClassifierError(
                f"corrupt model file {path}: sha256 {digest[:12]}… differs from the "
                f"{expected[:12]}… recorded in {manifest}; reinstall napari-pcim"
            )
    return digest


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
    _check_entries(entries, str(path))
    return entries


def check_torchscript_file(path: str | os.PathLike) -> None:
    """ClassifierError unless ``path`` is a TorchScript zip archive (checked without unpickling)."""
    _archive_entries(Path(path))


def _check_entries(entries: list[str], source: str) -> None:
    """ClassifierError unless ``entries`` are those of a TorchScript archive."""
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
            f"{source}: not a TorchScript archive (missing {lacking} entries).{hint}"
        )


def check_torchscript_bytes(data: bytes, source: str) -> None:
    """ClassifierError unless ``data`` is a TorchScript zip archive whose entries pass their CRCs."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            entries, bad = zf.namelist(), zf.testzip()
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise ClassifierError(f"{source}: not a TorchScript archive (not a valid zip file: {exc})") from None
    if bad is not None:
        raise ClassifierError(f"corrupt model file {source}: entry {bad} fails its CRC check")
    _check_entries(entries, source)


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
        try:
            with zipfile.ZipFile(path) as zf:
                raw = zf.read(inner[0])
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
            raise ClassifierError(f"corrupt model file {path}: {inner[0]}: {exc}") from exc
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
        raise MissingMetadataError(
            f"{path}: no napari-pcim metadata (no _extra_files[{METADATA_NAME!r}] in the archive, "
            f"no sidecar). Write {sidecar} with the keys {list(_REQUIRED_KEYS)} (optional: "
            f"field_mode {list(FIELD_MODES)}, tile_overlap), e.g. {json.dumps(SIDECAR_EXAMPLE)}; "
            "see docs/models.md",
            path,
            sidecar,
        )
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClassifierError(f"{source}: metadata is not valid JSON ({exc})") from exc
    return ClassifierMeta.from_dict(data, source=source)


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _numbers(text: str, key: str, sidecar: str) -> list[float]:
    try:
        return [float(t) for t in _names(text)]
    except ValueError:
        raise ClassifierError(
            f"{sidecar}: {key} must be comma-separated numbers, one per channel, got {text!r}"
        ) from None


@dataclass
class SidecarFields:
    """The sidecar contract as flat form fields (lists are comma-separated text).

    The Model dock's form for a TorchScript file without metadata is generated from
    these fields (``help`` in each field's metadata is its tooltip);
    :meth:`to_metadata` turns them into the metadata dict, validated on the way.
    """

    channels: str = field(default="", metadata={"help": "model input channels, in order, comma-separated (e.g. DAPI, GFP)"})
    input_height: int = field(default=128, metadata={"help": "input height the model was trained on (px)"})
    input_width: int = field(default=128, metadata={"help": "input width the model was trained on (px)"})
    mean: str = field(default="", metadata={"help": "normalisation mean of the raw intensities, one per channel"})
    std: str = field(default="", metadata={"help": "normalisation std of the raw intensities, one per channel (> 0)"})
    classes: str = field(default="control, treated", metadata={"help": "class names, in the order of the model's outputs"})
    field_mode: FieldMode = field(default="tile", metadata={"help": "bigger fields: cut into input-size tiles, or resize"})
    tile_overlap: int = field(default=0, metadata={"help": "overlap of neighbouring tiles in tile mode (px)"})

    def to_metadata(self, source: str = "sidecar form") -> dict[str, Any]:
        """The metadata dict; ClassifierError naming the field at fault if invalid."""
        data = {
            "channels": _names(self.channels),
            "input_size": [int(self.input_height), int(self.input_width)],
            "normalization": {"mean": _numbers(self.mean, "mean", source),
                              "std": _numbers(self.std, "std", source)},
            "classes": _names(self.classes),
            "field_mode": self.field_mode,
            "tile_overlap": int(self.tile_overlap),
        }
        ClassifierMeta.from_dict(data, source=source)
        return data


def write_sidecar(sidecar: str | os.PathLike, metadata: dict[str, Any], *, overwrite: bool = False) -> Path:
    """Validate ``metadata`` and write it atomically to ``sidecar``; an existing file needs ``overwrite``."""
    from napari_pcim import atomic

    sidecar = Path(sidecar)
    ClassifierMeta.from_dict(metadata, source=str(sidecar))
    if sidecar.exists() and not overwrite:
        raise ClassifierError(f"{sidecar}: already exists; not overwritten")
    return atomic.write_json(sidecar, metadata, overwrite=overwrite)

"""Model integrity (issue 15): corrupt archives and altered bundled models are refused."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

from napari_pcim.classifier import (
    ClassifierError,
    bundled_model_path,
    bundled_models,
    load_classifier,
)
from napari_pcim.classifier_meta import MANIFEST_NAME, recorded_sha256


def _corrupt_stored_entry(path: Path, n: int = 2000) -> str:
    """Overwrite ``n`` bytes in the middle of the largest stored (uncompressed) entry."""
    with zipfile.ZipFile(path) as zf:
        info = max(
            (i for i in zf.infolist() if i.compress_type == zipfile.ZIP_STORED),
            key=lambda i: i.file_size,
        )
    with path.open("r+b") as fh:
        fh.seek(info.header_offset + 26)
        name_len = int.from_bytes(fh.read(2), "little")
        extra_len = int.from_bytes(fh.read(2), "little")
        start = info.header_offset + 30 + name_len + extra_len + info.file_size // 2 - n // 2
        fh.seek(start)
        old = fh.read(n)
        fh.seek(start)
        fh.write(bytes(b ^ 0x5A for b in old))
    return info.filename


def test_corrupted_bundled_model_copy_is_refused(tmp_path):
    """2000 corrupted bytes in a weight entry: loaded and ran before; now 'corrupt model file'."""
    path = tmp_path / "foci_vgg.pt"
    shutil.copy(bundled_model_path("foci_vgg"), path)
    entry = _corrupt_stored_entry(path)
    with pytest.raises(ClassifierError, match="corrupt model file") as info:
        load_classifier(path)
    assert str(path) in str(info.value) and entry in str(info.value)


def test_corrupt_metadata_entry_is_a_classifier_error(tmp_path):
    """A CRC failure inside the embedded metadata is named, not a zipfile traceback."""
    path = tmp_path / "m.pt"
    shutil.copy(bundled_model_path("foci_vgg"), path)
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("napari_pcim.json"))
    with path.open("r+b") as fh:
        fh.seek(info.header_offset + 26)
        skip = int.from_bytes(fh.read(2), "little") + int.from_bytes(fh.read(2), "little")
        fh.seek(info.header_offset + 30 + skip + 2)
        fh.write(b"#")
    with pytest.raises(ClassifierError, match="corrupt model file"):
        load_classifier(path)


def test_bundled_manifest_matches_the_bundled_models():
    """SHA256SUMS is recomputed from the files here, so it cannot go stale silently."""
    models = bundled_models()
    assert models
    root = next(iter(models.values())).parent
    actual = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in models.values()}
    assert recorded_sha256(root / MANIFEST_NAME) == actual, (
        f"regenerate it: cd {root} && sha256sum *.pt > {MANIFEST_NAME}"
    )


def test_bundled_model_with_wrong_recorded_sha256_is_refused(tmp_path, monkeypatch):
    """A bundled model whose bytes differ from SHA256SUMS is refused even with valid CRCs."""
    from napari_pcim import classifier

    root = tmp_path / "models"
    root.mkdir()
    shutil.copy(bundled_model_path("foci_vgg"), root / "foci_vgg.pt")
    (root / MANIFEST_NAME).write_text(f"{'0' * 64}  foci_vgg.pt\n")
    monkeypatch.setattr(classifier, "_bundled_dir", lambda: root)
    with pytest.raises(ClassifierError, match="corrupt model file .*recorded in"):
        load_classifier(bundled_model_path("foci_vgg"))
    (root / MANIFEST_NAME).write_text(
        f"{hashlib.sha256((root / 'foci_vgg.pt').read_bytes()).hexdigest()}  foci_vgg.pt\n"
    )
    assert load_classifier(root / "foci_vgg.pt").sha256 in (root / MANIFEST_NAME).read_text()

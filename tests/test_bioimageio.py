"""bioimage.io model packages as classifiers: built in the tests with bioimageio.spec.

The packages are real zips/folders written by bioimageio.spec's own description classes
and ``save_bioimageio_package*``; the weights are the bundled ``foci_vgg`` TorchScript.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("bioimageio.spec")

from bioimageio.spec import save_bioimageio_package
from bioimageio.spec.model import v0_5 as bm

from napari_pcim import explain
from napari_pcim.bioimageio_package import is_package, save_package
from napari_pcim.classifier import (
    ClassifierError,
    bundled_model_path,
    load_classifier,
    read_metadata,
)
from napari_pcim.synth import generate_field


@pytest.fixture(scope="module")
def foci_package(tmp_path_factory) -> Path:
    """foci_vgg.pt written as a bioimage.io package zip by :func:`save_package`."""
    out = tmp_path_factory.mktemp("bioimageio") / "foci_vgg.zip"
    return save_package(bundled_model_path("foci_vgg"), out)


def test_package_gives_the_same_maps_as_the_pt_file(foci_package):
    pt = load_classifier(bundled_model_path("foci_vgg"))
    pkg = load_classifier(foci_package)
    assert pkg.meta.channels == pt.meta.channels and pkg.meta.classes == pt.meta.classes
    assert (pkg.meta.input_size, pkg.meta.field_mode, pkg.meta.tile_overlap) == (
        pt.meta.input_size, pt.meta.field_mode, pt.meta.tile_overlap)
    np.testing.assert_allclose(pkg.meta.mean, pt.meta.mean, rtol=1e-12)
    np.testing.assert_allclose(pkg.meta.std, pt.meta.std, rtol=1e-12)
    # the model's recommended explainer options travel with it (they did not, once)
    assert pt.meta.extra["explainer_options"]
    assert pkg.meta.extra["explainer_options"] == pt.meta.extra["explainer_options"]
    field = generate_field("foci", True, size=200, seed=3).image
    for method, options in (("input_x_gradient", {}), ("pcim", {"steps": 2})):
        a = explain(pt, field, method=method, device="cpu", **options)
        b = explain(pkg, field, method=method, device="cpu", **options)
        np.testing.assert_allclose(b.maps, a.maps, rtol=1e-5, atol=1e-7, err_msg=method)
        np.testing.assert_allclose(b.probabilities, a.probabilities, rtol=1e-5)
        assert np.abs(a.maps).max() > 0


def test_package_folder_and_yaml_path(foci_package, tmp_path):
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(foci_package) as zf:
        zf.extractall(folder)
    assert is_package(folder) and is_package(foci_package)
    assert not is_package(bundled_model_path("foci_vgg"))
    field = generate_field("foci", False, size=128, seed=1).image
    want = load_classifier(bundled_model_path("foci_vgg")).predict_proba(field)
    for source in (folder, folder / "rdf.yaml"):
        np.testing.assert_allclose(load_classifier(source).predict_proba(field), want, rtol=1e-5)


class ChannelsLast(torch.nn.Module):
    """foci_vgg behind a (B, Y, X, C) input, as a package with axes [batch, y, x, channel] has."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.permute(0, 3, 1, 2))


def _package(tmp: Path, *, preprocessing=(), weights=None, out_axes=None, in_axes=None,
             channels_last=False) -> Path:
    """A package of foci_vgg's weights with the given preprocessing / weights / axes."""
    meta = read_metadata(bundled_model_path("foci_vgg"))
    module = torch.jit.load(str(bundled_model_path("foci_vgg"))).eval()
    if channels_last:
        module = torch.jit.script(ChannelsLast(module).eval())
    torch.jit.save(module, str(tmp / "weights.pt"))
    shape = (1, 128, 128, 4) if channels_last else (1, 4, 128, 128)
    raw = np.random.default_rng(0).uniform(100, 500, shape).astype("float32")
    np.save(tmp / "in.npy", raw)
    out_axes = out_axes or [bm.BatchAxis(), bm.ChannelAxis(channel_names=["control", "treated"])]
    shape = [1 if isinstance(a, bm.BatchAxis) else (
        len(a.channel_names) if isinstance(a, bm.ChannelAxis) else a.size) for a in out_axes]
    np.save(tmp / "out.npy", np.random.default_rng(1).uniform(-3, 3, shape).astype("float32"))
    (tmp / "README.md").write_text("# test\n")
    descr = bm.ModelDescr(
        name="test model", description="a test", authors=[bm.Author(name="tests")],
        cite=[bm.CiteEntry(text="tests", url="https://github.com/napari-pcim/napari-pcim")],
        license="BSD-3-Clause", documentation=bm.FileDescr(source=tmp / "README.md"),
        inputs=[bm.InputTensorDescr(
            id=bm.TensorId("raw"),
            axes=in_axes or [bm.BatchAxis(), bm.ChannelAxis(channel_names=meta.channels),
                             bm.SpaceInputAxis(id=bm.AxisId("y"), size=bm.ParameterizedSize(min=64, step=16)),
                             bm.SpaceInputAxis(id=bm.AxisId("x"), size=bm.ParameterizedSize(min=64, step=16))],
            test_tensor=bm.FileDescr(source=tmp / "in.npy"), preprocessing=list(preprocessing))],
        outputs=[bm.OutputTensorDescr(id=bm.TensorId("scores"), axes=out_axes,
                                      test_tensor=bm.FileDescr(source=tmp / "out.npy"))],
        weights=weights or bm.WeightsDescr(torchscript=bm.TorchscriptWeightsDescr(
            source=tmp / "weights.pt", pytorch_version="2.0")),
    )
    return save_bioimageio_package(descr, output_path=tmp / "model.zip")


def test_per_sample_preprocessing_runs_on_each_input(tmp_path):
    zmuv = bm.ZeroMeanUnitVarianceDescr(kwargs=bm.ZeroMeanUnitVarianceKwargs(axes=[bm.AxisId("y"), bm.AxisId("x")]))
    clf = load_classifier(_package(tmp_path, preprocessing=[zmuv]))
    assert clf.meta.input_size == (128, 128)  # the test tensor's size (parameterised axes)
    assert clf.meta.mean == [0.0] * 4 and clf.meta.std == [1.0] * 4
    assert clf.meta.extra["bioimageio"]["normalised_in_module"] is True
    field = generate_field("foci", True, size=128, seed=2).image.astype(np.float32)
    x = torch.from_numpy(field)[None]
    mean, std = x.mean(dim=(2, 3), keepdim=True), x.std(dim=(2, 3), keepdim=True, unbiased=False)
    inner = torch.jit.load(str(bundled_model_path("foci_vgg"))).eval()
    want = torch.softmax(inner((x - mean) / (std + 1e-6)), dim=1).detach().numpy()
    np.testing.assert_allclose(clf.predict_proba(field), want, rtol=1e-4, atol=1e-6)
    # and the gradient flows through the normalisation: explanations are finite and non-zero
    maps = explain(clf, field, method="input_x_gradient", device="cpu").maps
    assert np.isfinite(maps).all() and np.abs(maps).max() > 0


def test_scale_range_per_channel(tmp_path):
    step = bm.ScaleRangeDescr(kwargs=bm.ScaleRangeKwargs(
        axes=[bm.AxisId("y"), bm.AxisId("x")], min_percentile=1.0, max_percentile=99.0))
    clf = load_classifier(_package(tmp_path, preprocessing=[step]))
    field = generate_field("foci", False, size=128, seed=4).image.astype(np.float32)
    lo, hi = np.percentile(field, [1, 99], axis=(1, 2), keepdims=True)
    x = torch.from_numpy(((field - lo) / (hi - lo + 1e-6)).astype(np.float32))[None]
    inner = torch.jit.load(str(bundled_model_path("foci_vgg"))).eval()
    want = torch.softmax(inner(x), dim=1).detach().numpy()
    np.testing.assert_allclose(clf.predict_proba(field), want, rtol=1e-4, atol=1e-5)


def test_channels_last_axes_are_permuted(tmp_path):
    meta = read_metadata(bundled_model_path("foci_vgg"))
    axes = [bm.BatchAxis(), bm.SpaceInputAxis(id=bm.AxisId("y"), size=128),
            bm.SpaceInputAxis(id=bm.AxisId("x"), size=128), bm.ChannelAxis(channel_names=meta.channels)]
    fixed = bm.FixedZeroMeanUnitVarianceDescr(kwargs=bm.FixedZeroMeanUnitVarianceAlongAxisKwargs(
        mean=meta.mean, std=meta.std, axis=bm.AxisId("channel")))
    clf = load_classifier(_package(tmp_path, in_axes=axes, preprocessing=[fixed], channels_last=True))
    assert clf.meta.channels == meta.channels and clf.meta.input_size == (128, 128)
    field = generate_field("foci", True, size=256, seed=5).image
    want = load_classifier(bundled_model_path("foci_vgg")).predict_proba(field)
    np.testing.assert_allclose(clf.predict_proba(field), want, rtol=1e-5, atol=1e-7)


def test_refuses_weights_that_are_not_torchscript(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"not really onnx")
    weights = bm.WeightsDescr(onnx=bm.OnnxWeightsDescr(source=tmp_path / "model.onnx", opset_version=15))
    with pytest.raises(ClassifierError, match=r"weights are \['onnx'\]; napari-pcim runs TorchScript"):
        load_classifier(_package(tmp_path, weights=weights))


def test_refuses_an_output_that_is_not_one_score_per_class(tmp_path):
    axes = [bm.BatchAxis(), bm.ChannelAxis(channel_names=["a", "b"]),
            bm.SpaceOutputAxis(id=bm.AxisId("y"), size=128), bm.SpaceOutputAxis(id=bm.AxisId("x"), size=128)]
    with pytest.raises(ClassifierError, match=r"one score per class, axes \[batch, channel\]"):
        load_classifier(_package(tmp_path, out_axes=axes))


def test_refuses_a_checkpoint_posing_as_torchscript(tmp_path):
    folder = tmp_path / "folder"
    with zipfile.ZipFile(_package(tmp_path)) as zf:
        zf.extractall(folder)
    torch.save({"w": torch.zeros(2)}, folder / "weights.pt")  # a pickle checkpoint
    with pytest.raises(ClassifierError, match="SHA256 mismatch") as info:
        load_classifier(folder)  # the rdf's sha256 no longer matches
    assert "\n" not in str(info.value)
    rdf = folder / "rdf.yaml"
    text = rdf.read_text().splitlines()
    i = next(i for i, ln in enumerate(text) if ln.strip().startswith("source: weights.pt"))
    rdf.write_text("\n".join(ln for j, ln in enumerate(text) if not (
        j in (i - 1, i + 1) and ln.strip().startswith("sha256:"))) + "\n")
    with pytest.raises(ClassifierError, match="not a TorchScript archive.*torch.save"):
        load_classifier(folder)


def test_a_broken_package_is_one_clear_line(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "rdf.yaml").write_text("type: model\nformat_version: 0.5.4\nname: x\n")
    with pytest.raises(ClassifierError, match="not a valid bioimage.io model") as info:
        load_classifier(folder)
    assert "\n" not in str(info.value)


@pytest.mark.gui
def test_model_dock_loads_a_package(make_napari_viewer, qtbot, foci_package):
    pytest.importorskip("pytestqt")
    from napari_pcim._napari.widgets import ModelWidget
    from napari_pcim._napari.widgets.session import get_session

    viewer = make_napari_viewer()
    widget = ModelWidget(viewer)
    widget.load_model(foci_package)
    qtbot.waitUntil(lambda: get_session(viewer).classifier is not None, timeout=60_000)
    assert get_session(viewer).classifier.path == foci_package
    assert "bioimage.io" in widget.meta_label.text() and "fixed mean/std" in widget.meta_label.text()
    assert widget.form is None

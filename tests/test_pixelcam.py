"""PixelCAM: partial cross-entropy, pseudo-label sampling, TorchScript export with localize."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_pcim.classifier import load_classifier
from napari_pcim.training.pixelcam_training import (
    IGNORE,
    PixelCAMConfig,
    PixelCAMNet,
    export_pixelcam,
    partial_cross_entropy,
    select_pseudo_labels,
    train_pixelcam,
)


def test_partial_cross_entropy_counts_only_labelled_pixels():
    # 1 image, 2x2 pixels. Pixel (0,0) labelled fg, (1,1) labelled bg, the others unlabeled.
    logits = torch.tensor([[[[0.0, 5.0], [-3.0, 1.0]], [[2.0, -1.0], [4.0, 0.0]]]])
    pseudo = torch.tensor([[[1, IGNORE], [IGNORE, 0]]])
    # By hand: pixel (0,0): -log softmax([0, 2])[1]; pixel (1,1): -log softmax([1, 0])[0]
    p00 = -math.log(math.exp(2.0) / (math.exp(0.0) + math.exp(2.0)))
    p11 = -math.log(math.exp(1.0) / (math.exp(1.0) + math.exp(0.0)))
    loss = partial_cross_entropy(logits, pseudo)
    assert float(loss) == pytest.approx((p00 + p11) / 2, rel=1e-6)

    # Changing the logits of unlabeled pixels leaves the loss unchanged, and they get no gradient.
    changed = logits.clone()
    changed[0, :, 0, 1] = torch.tensor([-9.0, 9.0])
    changed[0, :, 1, 0] = torch.tensor([7.0, 7.0])
    changed.requires_grad_(True)
    loss2 = partial_cross_entropy(changed, pseudo)
    assert float(loss2.detach()) == pytest.approx(float(loss), rel=1e-6)
    loss2.backward()
    assert torch.all(changed.grad[0, :, 0, 1] == 0) and torch.all(changed.grad[0, :, 1, 0] == 0)
    assert torch.any(changed.grad[0, :, 0, 0] != 0)


def test_partial_cross_entropy_with_nothing_labelled_is_zero_and_differentiable():
    logits = torch.randn(2, 2, 3, 3, requires_grad=True)
    loss = partial_cross_entropy(logits, torch.full((2, 3, 3), IGNORE))
    assert float(loss) == 0.0
    loss.backward()  # keeps the graph: no error


def test_pseudo_labels_take_the_requested_fractions():
    h = w = 20
    n = h * w
    cam = torch.arange(2 * n, dtype=torch.float32).reshape(2, h, w)  # distinct, ordered scores
    gen = torch.Generator().manual_seed(0)
    labels = select_pseudo_labels(cam, fg_fraction=0.05, bg_fraction=0.25, fg_sample=0.5,
                                  bg_sample=0.1, has_foreground=torch.tensor([True, False]),
                                  generator=gen)
    n_fg_pool, n_bg_pool = round(0.05 * n), round(0.25 * n)
    for i in range(2):
        flat_cam = cam[i].flatten()
        flat = labels[i].flatten()
        fg, bg = flat == 1, flat == 0
        assert int(bg.sum()) == round(0.1 * n_bg_pool)
        # background samples come from the least confident pool
        assert float(flat_cam[bg].max()) < float(torch.sort(flat_cam).values[n_bg_pool])
        if i == 0:
            assert int(fg.sum()) == round(0.5 * n_fg_pool)
            assert float(flat_cam[fg].min()) >= float(torch.sort(flat_cam, descending=True).values[n_fg_pool - 1])
        else:
            assert int(fg.sum()) == 0  # a control image gives no foreground
        assert int((flat == IGNORE).sum()) == n - int(fg.sum()) - int(bg.sum())


def test_pseudo_labels_reject_bad_fractions():
    with pytest.raises(ValueError, match="fg_fraction"):
        select_pseudo_labels(torch.zeros(1, 4, 4), fg_fraction=0.0)
    with pytest.raises(ValueError, match="≤ 1"):
        select_pseudo_labels(torch.zeros(1, 4, 4), fg_fraction=0.6, bg_fraction=0.6)


def test_export_with_localize_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(100, 1000, size=(16, 4, 32, 32)).astype(np.uint16)
    images[8:, 2, 8:16, 8:16] += 3000  # treated: a bright marker patch
    labels = np.array([0] * 8 + [1] * 8)
    config = PixelCAMConfig(n_train=16, size=32, epochs_stage1=1, epochs_stage2=1, batch_size=8)
    model, history, (mean, std) = train_pixelcam(images, labels, config)
    assert len(history["stage1_ce"]) == 1 and len(history["stage2_pixel"]) == 1

    path = export_pixelcam(model, tmp_path / "pixelcam.pt", mean=mean, std=std, config=config)
    clf = load_classifier(path)
    assert clf.meta.has_localize is True
    x = clf.prepare(images[:3])
    with torch.inference_mode():
        fg = clf.module.localize(x)
        eager = model.localize(x)
        logits = clf.module(x)
    assert fg.shape == (3, 32, 32)
    assert torch.all((fg >= 0) & (fg <= 1))
    assert torch.allclose(fg, eager, atol=1e-6)
    assert logits.shape == (3, 2)


def test_pixelcam_net_is_scriptable_and_differentiable():
    net = PixelCAMNet().eval()
    scripted = torch.jit.script(net)
    x = torch.randn(2, 4, 64, 64, requires_grad=True)
    scripted(x)[:, 1].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert scripted.cam(x.detach(), 1).shape == (2, 64, 64)


def test_split_pixel_head_equals_a_1x1_conv_over_the_upsampled_hypercolumn():
    import torch.nn.functional as F

    torch.manual_seed(0)
    net = PixelCAMNet().eval()
    x = torch.randn(2, 4, 32, 32)
    with torch.no_grad():
        feats = net._features(x)
        depth = len(net.pixel_proj)
        up = torch.cat([feats[0]] + [F.interpolate(f, size=(32, 32), mode="bilinear", align_corners=False)
                                     for f in feats[1:depth]], dim=1)
        weight = torch.cat([p.weight for p in net.pixel_proj], dim=1)
        hidden = F.conv2d(up, weight, net.pixel_proj[0].bias)
        expected = net.pixel_out(torch.relu(hidden))
        _, got = net.both(x)
    assert torch.allclose(got, expected, atol=1e-5)


def test_cli_trains_a_pixelcam_model(tmp_path, capsys):
    from napari_pcim.cli.main import main

    out = tmp_path / "pc.pt"
    argv = ["train", "--pixelcam", "--out", str(out), "--n-train", "16", "--epochs", "1",
            "--device", "cpu", "--seed", "2"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "pixelcam epochs" in err and "2/2" in err and f"wrote {out}" in err
    clf = load_classifier(out)
    assert clf.meta.has_localize and clf.meta.extra["training"]["n_train"] == 16
    assert clf.meta.extra["training"]["seed"] == 2 and len(clf.meta.extra["history"]["stage1_ce"]) == 1

from __future__ import annotations

import json
import urllib.error

import pytest
import torch
from torch import nn

from fast_nst import FastNSTError
from fast_nst.core import vgg
from fast_nst.core.losses import gram_matrix
from fast_nst.core.vgg import VGGEncoder, canonical_layer, layer_index, save_features


def test_layer_name_schemes_agree() -> None:
    assert canonical_layer("conv_1") == "conv1_1"
    assert canonical_layer("conv_16") == "conv5_4"
    assert canonical_layer("relu_4") == "relu2_2"
    assert layer_index("relu5_1") == 29
    assert vgg.LAYER_NAMES[layer_index("pool5")] == "pool5"
    assert len(vgg.LAYER_NAMES) == 37


def test_both_schemes_give_the_same_features() -> None:
    enc = VGGEncoder(["conv_4", "conv2_2", "relu_4", "relu2_2"], weights="random")
    out = enc(torch.rand(1, 3, 32, 32))
    assert torch.equal(out["conv_4"], out["conv2_2"])
    assert torch.equal(out["relu_4"], out["relu2_2"])
    assert not torch.equal(out["conv_4"], out["relu_4"])  # inplace ReLU must not alias
    assert out["relu2_2"].shape == (1, 128, 16, 16)


def test_network_is_cut_after_deepest_layer() -> None:
    enc = VGGEncoder(["relu1_1", "relu3_1"], weights="random")
    assert len(enc.features) == layer_index("relu3_1") + 1
    ran: list[int] = []
    for i, module in enumerate(enc.features):
        module.register_forward_hook(lambda *_, i=i: ran.append(i))
    enc(torch.rand(1, 3, 16, 16))
    assert ran == list(range(layer_index("relu3_1") + 1))


def test_frozen_eval_and_gradients_reach_the_input() -> None:
    enc = VGGEncoder(["relu2_1"], weights="random")
    nn.Sequential(enc).train()
    assert not enc.training and not enc.features.training
    assert all(not p.requires_grad for p in enc.parameters())
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    enc(x)["relu2_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_average_pooling_replaces_max_pooling() -> None:
    enc = VGGEncoder(["relu3_1"], weights="random", pooling="avg")
    kinds = {type(m) for m in enc.features}
    assert nn.AvgPool2d in kinds and nn.MaxPool2d not in kinds


def test_unknown_layer_is_a_one_line_error() -> None:
    with pytest.raises(FastNSTError, match=r"unknown VGG19 layer 'relu9_9'; valid names: conv1_1"):
        VGGEncoder(["relu9_9"], weights="random")


def test_unknown_pooling_and_convention() -> None:
    with pytest.raises(FastNSTError, match="pooling"):
        VGGEncoder(["relu1_1"], weights="random", pooling="median")
    with pytest.raises(FastNSTError, match="convention"):
        VGGEncoder(["relu1_1"], weights="random", convention="bgr")


def test_missing_and_unrelated_weight_files(tmp_path) -> None:
    with pytest.raises(FastNSTError, match="not found"):
        VGGEncoder(["relu1_1"], weights=str(tmp_path / "nope.pth"), convention="caffe")
    junk = tmp_path / "junk.pth"
    junk.write_text("hello")
    with pytest.raises(FastNSTError, match="not a VGG19 weights file torch can read"):
        VGGEncoder(["relu1_1"], weights=str(junk), convention="caffe")
    other = tmp_path / "other.pth"
    torch.save(nn.Linear(2, 2).state_dict(), other)
    with pytest.raises(FastNSTError, match="does not hold VGG19 weights"):
        VGGEncoder(["relu1_1"], weights=str(other), convention="caffe")


def test_local_file_full_model_or_features_only(tmp_path) -> None:
    from torchvision.models import vgg19

    model = vgg19(weights=None)
    full, feats = tmp_path / "full.pth", tmp_path / "feats.pth"
    torch.save(model.state_dict(), full)
    torch.save(model.features.state_dict(), feats)
    x = torch.rand(1, 3, 16, 16)
    a = VGGEncoder(["relu2_1"], weights=str(full), convention="torchvision")(x)["relu2_1"]
    b = VGGEncoder(["relu2_1"], weights=str(feats), convention="torchvision")(x)["relu2_1"]
    torch.testing.assert_close(a, b)


def test_convention_from_sidecar_json(tmp_path) -> None:
    path = tmp_path / "w.pth"
    path.write_bytes(b"")
    path.with_suffix(".json").write_text(json.dumps({"input": {"range": [0, 255]}}))
    assert vgg.resolve_convention(str(path), "auto").name == "caffe"
    (tmp_path / "x.pth").write_bytes(b"")  # no sidecar
    with pytest.raises(FastNSTError, match="cannot tell the input convention"):
        vgg.resolve_convention(str(tmp_path / "x.pth"), "auto")


def test_offline_imagenet_download_is_a_one_line_error(monkeypatch) -> None:
    def offline(**_):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("torchvision.models.vgg19", offline)  # imported where it is used
    with pytest.raises(FastNSTError, match="could not download .* vgg.weights="):
        VGGEncoder(["relu1_1"], weights="imagenet")


def test_caffe_weights_differ_from_random(caffe_weights) -> None:
    x = torch.rand(1, 3, 32, 32)
    real = VGGEncoder(["relu2_1"], weights=str(caffe_weights))
    assert real.convention.name == "caffe"
    rand = VGGEncoder(["relu2_1"], weights="random", convention="caffe")
    a, b = real(x)["relu2_1"], rand(x)["relu2_1"]
    assert a.shape == b.shape
    assert (a - b).abs().mean() > 0.1 * a.abs().mean()


def test_caffe_texture_gram_loss_decreases(caffe_weights) -> None:
    layers = ["relu1_1", "relu2_1", "relu3_1"]
    enc = VGGEncoder(layers, weights=str(caffe_weights))
    style = torch.zeros(1, 3, 32, 32)
    style[..., ::4, :] = 1.0  # horizontal stripes
    with torch.no_grad():
        targets = {k: gram_matrix(v) for k, v in enc(style).items()}
    image = torch.rand(1, 3, 32, 32, requires_grad=True)
    opt = torch.optim.Adam([image], lr=0.05)

    def loss_fn() -> torch.Tensor:
        feats = enc(image)
        return sum(torch.nn.functional.mse_loss(gram_matrix(feats[k]), targets[k])
                   for k in layers)

    first = loss_fn().item()
    for _ in range(15):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
    assert loss_fn().item() < 0.5 * first


def test_weights_cut_after_a_layer_load_and_refuse_deeper_layers(tmp_path) -> None:
    from torchvision.models import vgg19

    full = tmp_path / "full.pth"
    torch.save(vgg19(weights=None).features.state_dict(), full)
    cut = save_features(str(full), "relu2_2", tmp_path / "cut.pth", half=True)
    assert sorted(torch.load(cut).keys()) == ["0.bias", "0.weight", "2.bias", "2.weight",
                                               "5.bias", "5.weight", "7.bias", "7.weight"]
    assert all(v.dtype == torch.float16 for v in torch.load(cut).values())
    assert cut.stat().st_size < full.stat().st_size / 50
    x = torch.rand(1, 3, 32, 32)
    want = VGGEncoder(["relu2_2"], weights=str(full), convention="caffe")(x)["relu2_2"]
    got = VGGEncoder(["relu2_2"], weights=str(cut), convention="caffe")(x)["relu2_2"]
    assert got.dtype == torch.float32
    assert ((got - want).norm() / want.norm()).item() < 1e-2  # float16 rounding of the weights
    with pytest.raises(FastNSTError, match="only down to relu2_2; layer relu3_1 needs the full"):
        VGGEncoder(["relu1_1", "relu3_1"], weights=str(cut), convention="caffe")


def test_full_file_keeps_pool5_and_cuts_are_refused_beyond_the_file(tmp_path) -> None:
    from torchvision.models import vgg19

    full = tmp_path / "full.pth"
    torch.save(vgg19(weights=None).features.state_dict(), full)
    assert len(vgg.load_features(str(full))) == len(vgg.LAYER_NAMES)
    assert VGGEncoder(["pool5"], weights=str(full), convention="caffe")(
        torch.rand(1, 3, 32, 32))["pool5"].shape == (1, 512, 1, 1)
    cut = save_features(str(full), "relu1_2", tmp_path / "cut.pth")
    with pytest.raises(FastNSTError, match="only down to relu1_2, not relu2_1"):
        save_features(str(cut), "relu2_1", tmp_path / "deeper.pth")
    shifted = tmp_path / "shifted.pth"  # keys that do not start at the first layer
    torch.save({"2.weight": torch.zeros(64, 64, 3, 3), "2.bias": torch.zeros(64)}, shifted)
    with pytest.raises(FastNSTError, match="does not hold VGG19 weights"):
        VGGEncoder(["relu1_2"], weights=str(shifted), convention="caffe")


def test_auto_convention_of_a_missing_file_says_not_found(tmp_path) -> None:
    with pytest.raises(FastNSTError, match="VGG weights file not found: .*nope.pth"):
        VGGEncoder(["relu1_1"], weights=str(tmp_path / "nope.pth"))  # convention auto


def test_auto_convention_reads_the_sidecar_of_a_home_path(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "w.pth").write_bytes(b"")
    (tmp_path / "w.json").write_text(json.dumps({"input": {"range": [0, 255]}}))
    assert vgg.resolve_convention("~/w.pth", "auto").name == "caffe"


def test_min_side_counts_a_pool_layer_itself() -> None:
    assert vgg.min_side(["relu5_1"]) == 16  # four pools before it
    assert vgg.min_side(["pool5"]) == 32  # a 16 px image is 1 px before pool5, 0 after it
    with pytest.raises(FastNSTError, match="raise size"):
        vgg.check_side(["pool5"], 16, 16, "image", "raise size")
    features = VGGEncoder(["pool5"], weights="random")(torch.rand(1, 3, 32, 32))
    assert features["pool5"].shape[-2:] == (1, 1)

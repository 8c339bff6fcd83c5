"""vadx.features: torchvision-layout backbones, weight-file loading and receptive-field geometry."""

import os
from pathlib import Path

import pytest
import torch
from torch import nn

import vadx
from vadx.features import (BACKBONES, conv_geometry, find_weights, fold_batchnorm, folded,
                           imagenet_normalize, load_backbone, sha256_file)

SHARED = Path(__file__).resolve().parents[2] / "shared"
MOBILENET = SHARED / "weights" / "mobilenet_v2_imagenet.pth"

# torchvision's published parameter counts (its model builders' docs): an independent check that
# each definition is the same network.
TORCHVISION_PARAMS = {"alexnet": 61_100_840, "resnet18": 11_689_512, "resnet50": 25_557_032,
                      "mobilenet_v2": 3_504_872}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_parameter_count_matches_torchvision(name):
    model = load_backbone(name, "random")
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMS[name]
    assert not model.training
    x = torch.zeros(1, 3, 224, 224)
    assert model.forward_features(x).shape[:2] == (1, model.out_channels)
    assert model(x).shape == (1, 1000)


def _save_torchvision_style(tmp_path, name, model, digest_prefix=None):
    path = tmp_path / "tmp.pth"
    torch.save(model.state_dict(), path)
    prefix = digest_prefix or sha256_file(path)[:8]
    final = tmp_path / f"{name}-{prefix}.pth"
    path.rename(final)
    return final


def test_torchvision_file_loads_and_is_verified(tmp_path):
    src = load_backbone("resnet18", "random")
    path = _save_torchvision_style(tmp_path, "resnet18", src)
    model = load_backbone("resnet18", path)
    assert model.weights_info.verified and model.weights_info.sha256 == sha256_file(path)
    for (k, a), b in zip(src.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), k


def test_corrupt_torchvision_file_is_refused(tmp_path):
    path = _save_torchvision_style(tmp_path, "resnet18", load_backbone("resnet18", "random"),
                                   digest_prefix="00000000")
    with pytest.raises(ValueError, match="SHA-256 starting 00000000"):
        load_backbone("resnet18", path)


def test_explicit_sha256_is_checked(tmp_path):
    path = tmp_path / "mine.pth"
    torch.save(load_backbone("resnet18", "random").state_dict(), path)
    assert not load_backbone("resnet18", path).weights_info.verified
    assert load_backbone("resnet18", path, sha256=sha256_file(path)).weights_info.verified
    with pytest.raises(ValueError, match="expected SHA-256 ab"):
        load_backbone("resnet18", path, sha256="ab" * 32)


def test_wrong_architecture_names_the_keys(tmp_path):
    path = tmp_path / "alex.pth"
    torch.save(load_backbone("alexnet", "random").state_dict(), path)
    with pytest.raises(ValueError, match="does not match torchvision's resnet18: missing keys"):
        load_backbone("resnet18", path)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(nn.Linear(2, 2), path)  # a whole pickled module, not a state dict
    with pytest.raises(ValueError, match="weights_only=True"):
        load_backbone("resnet18", path)


def test_safetensors_file_loads(tmp_path):
    from safetensors.torch import save_file

    src = load_backbone("alexnet", "random")
    save_file(src.state_dict(), tmp_path / "alexnet.safetensors")
    model = load_backbone("alexnet", tmp_path / "alexnet.safetensors")
    assert torch.equal(model.features[0].weight, src.features[0].weight)


def test_weights_dir_lookup(tmp_path, monkeypatch):
    monkeypatch.delenv("VADX_WEIGHTS_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="VADX_WEIGHTS_DIR is not set.*weights='random'"):
        load_backbone("resnet18")
    monkeypatch.setenv("VADX_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="resnet18-\\*.pth"):
        find_weights("resnet18")
    path = _save_torchvision_style(tmp_path, "resnet18", load_backbone("resnet18", "random"))
    assert find_weights("resnet18") == path
    assert load_backbone("resnet18").weights_info.path == os.fspath(path)


def test_demo_weights(tmp_path, monkeypatch):
    from vadx.features import demo_weights

    monkeypatch.delenv("VADX_WEIGHTS_DIR", raising=False)
    assert demo_weights("resnet18") == "random"
    monkeypatch.setenv("VADX_WEIGHTS_DIR", str(tmp_path))
    assert demo_weights("resnet18") == "random"
    _save_torchvision_style(tmp_path, "resnet18", load_backbone("resnet18", "random"))
    assert demo_weights("resnet18") is None and demo_weights("alexnet") == "random"


def test_bad_arguments():
    with pytest.raises(ValueError, match="backbone must be one of .* got 'vgg16'"):
        load_backbone("vgg16", "random")
    with pytest.raises(FileNotFoundError, match="no file"):
        load_backbone("alexnet", "/nonexistent/alexnet.pth")


@pytest.mark.skipif(not MOBILENET.exists(), reason=f"{MOBILENET} not present")
def test_shared_mobilenet_is_known_and_uses_relu():
    model = load_backbone("mobilenet_v2", MOBILENET)
    info = model.weights_info
    assert info.verified and info.to_json()["file"] == "mobilenet_v2_imagenet.pth"
    acts = {type(m) for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))}
    assert acts == {nn.ReLU}
    assert {type(m) for m in load_backbone("mobilenet_v2", MOBILENET, relu6=True).modules()
            if isinstance(m, (nn.ReLU, nn.ReLU6))} == {nn.ReLU6}
    with pytest.raises(ValueError, match="holds a mobilenet_v2"):
        load_backbone("resnet18", MOBILENET)


def _empirical_receptive_field(net: nn.Module, size: int = 161) -> int:
    """Width of the input region that reaches the centre output unit (by autograd)."""
    for p in net.parameters():
        nn.init.constant_(p, 0.01)  # positive weights: no cancellation hides a contributing pixel
    x = torch.ones(1, 3, size, size, requires_grad=True)
    y = net(x)
    y[0, :, y.shape[2] // 2, y.shape[3] // 2].sum().backward()
    cols = (x.grad[0].abs().sum(dim=(0, 1)) > 0).nonzero()
    return int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize("name,cut,expected", [
    ("alexnet", 5, 51),  # C1-S1-C2: the 51 px Sabokrou et al. report
    ("alexnet", 8, 99),  # through C3
    ("mobilenet_v2", 4, None),
])
def test_conv_geometry_matches_autograd(name, cut, expected):
    model = load_backbone(name, "random")
    prefix = model.features[:cut]
    (size, jump, offset) = vadx.ops.receptive_field(conv_geometry(prefix))
    assert size[0] == size[1]
    if expected is not None:
        assert size[0] == expected
    # MaxPool passes gradient to one input only; an AvgPool twin keeps every contributor.
    twin = nn.Sequential(*[nn.AvgPool2d(m.kernel_size, m.stride, m.padding)
                           if isinstance(m, nn.MaxPool2d) else m for m in prefix])
    assert _empirical_receptive_field(twin) == size[0]


def test_conv_geometry_skips_resnet_shortcuts():
    model = load_backbone("resnet18", "random")
    layers = conv_geometry(model.layer2)
    assert len(layers) == 4  # two blocks x two 3x3 convolutions; the 1x1 downsample is skipped
    assert [layer[1] for layer in layers] == [(2, 2), (1, 1), (1, 1), (1, 1)]


def test_imagenet_normalize():
    grey = torch.full((2, 1, 4, 5), 255, dtype=torch.uint8)
    x = imagenet_normalize(grey)
    assert x.shape == (2, 3, 4, 5)
    torch.testing.assert_close(x[0, :, 0, 0], (1 - torch.tensor([0.485, 0.456, 0.406]))
                               / torch.tensor([0.229, 0.224, 0.225]))
    with pytest.raises(ValueError, match="C in \\(1, 3\\), got shape \\(2, 2, 4, 5\\)"):
        imagenet_normalize(torch.zeros(2, 2, 4, 5, dtype=torch.uint8))


@pytest.mark.parametrize("name", ["mobilenet_v2", "alexnet", "resnet18"])
def test_fold_batchnorm_computes_the_same_function(name):
    torch.manual_seed(0)
    model = load_backbone(name, "random").eval()
    for m in model.modules():  # non-trivial statistics, as a trained network has
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5), m.bias.data.uniform_(-0.5, 0.5)
    folded = fold_batchnorm(model)
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    left = sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    if name == "mobilenet_v2":
        assert left == 0 < n_bn  # every conv+bn pair is inside a Sequential
    elif name == "resnet18":
        assert 0 < left < n_bn  # the downsample Sequentials fold; conv1/bn1 attributes do not
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        torch.testing.assert_close(folded.forward_features(x), model.forward_features(x),
                                   rtol=1e-4, atol=1e-4)
    assert all(not p.requires_grad for p in folded.parameters())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == (n_bn > 0)


def test_folded_copy_is_cached_and_follows_in_place_changes():
    torch.manual_seed(0)
    model = load_backbone("mobilenet_v2", "random").eval()
    x = torch.randn(1, 3, 32, 48)
    a = folded(model)
    assert folded(model) is a and folded(model, channels_last=True) is not a
    with torch.no_grad():
        model.features[0][1].weight.mul_(2)  # a batch norm changed in place: the fold is stale
        b = folded(model)
        assert b is not a
        torch.testing.assert_close(b.forward_features(x), model.forward_features(x), rtol=1e-4,
                                   atol=1e-4)

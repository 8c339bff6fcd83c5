"""The fcn-cascade detector plugin (Sabokrou et al., Deep-Anomaly): small and fast; the full UCSD Ped2
accuracy and the speed targets are in bench/test_fcn_cascade.py."""

import numpy as np
import pytest
import torch
from conftest import SHARED

import vadx
import vadx.data
from vadx.features import AlexNet, MobileNetV2, conv_geometry, sha256_file
from vadx.metrics import roc_auc
from vadx.ops import receptive_field, rollback_coverage
from vadx.testing import check_detector
from vadx_fcn_cascade.detector import FCNCascade, region_scores
from vadx_fcn_cascade.fcn import (ALEXNET_CUTS, MOBILENET_CUTS, HISTORY, build_prefix, cube, geometry,
                                  out_channels)
from vadx_fcn_cascade.localize import coverage_map, order_map
from vadx_fcn_cascade.sparse_ae import train_sparse_ae

MOBILENET = SHARED / "weights" / "mobilenet_v2_imagenet.pth"
PED2 = SHARED / "data" / "ucsd_ped2"

SMALL = dict(weights="random", hidden=32, ae_epochs=2, max_regions=5000, progress=False, stages=2)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def scene():
    return vadx.data.load("synthetic", seed=0, n_train=2, n_test=2, n_frames=60, height=96,
                          width=128, kinds=("appearance", "speed"))


@pytest.fixture(scope="module")
def fitted(scene):
    torch.manual_seed(0)
    return vadx.create("fcn-cascade", **SMALL).fit(scene.train)


# ---------------------------------------------------------------- end to end
def test_contract():
    # streaming feeds the FCN other batch sizes than offline scoring: float sums may differ
    det = check_detector(FCNCascade, weights="random", hidden=8, ae_epochs=1, max_regions=1000,
                         stream_tol=(1e-4, 1e-5))
    assert det.fixed_frame_size and det.beta_ <= det.alpha_


def test_registered():
    assert vadx.plugins.get_detector("fcn-cascade").cls is FCNCascade


def test_synthetic_detects_anomalies(scene, fitted):
    scores, labels, inside, outside = [], [], [], []
    for video in scene.test:
        s = fitted.score(video)
        assert s.frame.shape == (len(video),) and torch.isfinite(s.frame).all()
        assert s.maps.shape == (len(video), 96, 128)
        scores.append(s.frame.numpy())
        labels.append(np.asarray(video.labels))
        masks = video.masks.read()
        inside.append(s.maps.numpy()[masks].mean())
        outside.append(s.maps.numpy()[~masks].mean())
    auc = roc_auc(np.concatenate(scores), np.concatenate(labels))
    assert auc > 0.75, auc  # chance is 0.5
    assert np.mean(inside) > 1.3 * np.mean(outside)  # the maps light up on the anomalous object
    assert fitted.threshold_ is not None and fitted.beta_ <= fitted.alpha_


def test_first_frames_are_finite_and_history_is_the_first_frame(fitted, scene):
    frames = scene.test[0].read(0, 3)
    s = fitted.score(frames)
    assert torch.isfinite(s.frame).all()
    # frame 0 alone: D_0 built from I_0 repeated, the same as a video of six copies of I_0
    same = fitted.score(frames[:1].repeat(6, 1, 1, 1))
    torch.testing.assert_close(s.frame[0], same.frame[5], rtol=1e-5, atol=1e-5)


def test_training_videos_must_agree(scene):
    frames = scene.train[0].read(0, 8)
    with pytest.raises(ValueError, match="at least 6 frames"):
        vadx.create("fcn-cascade", **SMALL).fit([frames[:4]])
    with pytest.raises(ValueError, match=r"videos\[1\].*96x128.*got 80x128"):
        vadx.create("fcn-cascade", **SMALL).fit([frames, frames[:, :, :80]])
    with pytest.raises(ValueError, match=r"videos\[1\].*grey"):
        vadx.create("fcn-cascade", **SMALL).fit([frames, frames.repeat(1, 3, 1, 1)])


def test_beta_quantile_must_not_exceed_alpha_quantile():
    with pytest.raises(vadx.ParameterError,
                       match=r"^fcn-cascade: beta_quantile must be <= alpha_quantile \(0.9\), got 0.99$"):
        FCNCascade(beta_quantile=0.99, alpha_quantile=0.9)
    assert FCNCascade(beta_quantile=0.5, alpha_quantile=0.5).beta_quantile == 0.5


def test_missing_weights_file(tmp_path, scene, monkeypatch):
    monkeypatch.delenv("VADX_WEIGHTS_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        vadx.create("fcn-cascade", weights=str(tmp_path / "nothing.pth")).fit(scene.train)
    with pytest.raises(FileNotFoundError, match="VADX_WEIGHTS_DIR"):
        vadx.create("fcn-cascade").fit(scene.train)  # the paper's AlexNet, none given


# ---------------------------------------------------------------- the FCN prefix
def test_alexnet_geometry_is_the_papers():
    body, _ = build_prefix("alexnet", "C2", "mean", "random")
    assert geometry(body) == {"size": [51, 51], "jump": [8, 8], "offset": [18, 18]}
    assert [type(m).__name__ for m in body] == ["Conv2d", "ReLU", "AvgPool2d", "Conv2d", "ReLU"]
    body, _ = build_prefix("alexnet", "C2", "max", "random")
    assert isinstance(body[2], torch.nn.MaxPool2d) and geometry(body)["size"] == [51, 51]
    assert geometry(build_prefix("alexnet", "C1", "mean", "random")[0])["size"] == [11, 11]


def test_mobilenet_cut_is_closest_receptive_field():
    alex, mobile = AlexNet(), MobileNetV2()
    for layer, n in MOBILENET_CUTS.items():
        target = receptive_field(conv_geometry(alex.features[:ALEXNET_CUTS[layer]]))[0][0]
        sizes = [receptive_field(conv_geometry(mobile.features[:k]))[0][0] for k in range(1, 19)]
        best = min(range(len(sizes)), key=lambda i: (abs(sizes[i] - target), i)) + 1
        assert n == best, (layer, target, sizes)
    body, _ = build_prefix("mobilenet_v2", "C2", "mean", "random", tap="block")
    assert geometry(body)["size"] == [43, 43]


def test_alexnet_state_dict_by_path(tmp_path, scene, monkeypatch):
    """A torchvision-format AlexNet file (name embeds its SHA-256 prefix) loads by path and from
    VADX_WEIGHTS_DIR, and its weights are the ones used; a renamed file is rejected."""
    torch.manual_seed(1)
    raw = tmp_path / "raw.pth"
    net = AlexNet()
    torch.save(net.state_dict(), raw)
    path = tmp_path / f"alexnet-owt-{sha256_file(raw)[:8]}.pth"
    raw.rename(path)
    body, info = build_prefix("alexnet", "C2", "mean", str(path))
    assert info["verified"] and info["file"] == path.name
    assert torch.equal(body[3].weight, net.features[3].weight)
    monkeypatch.setenv("VADX_WEIGHTS_DIR", str(tmp_path))
    det = vadx.create("fcn-cascade", **{**SMALL, "weights": None}).fit(
        [scene.train[0].read(0, 12)])
    assert det.fcn_info_["file"] == path.name
    assert torch.equal(det.fcn_[0].weight, net.features[0].weight)
    bad = tmp_path / "alexnet-owt-00000000.pth"
    path.rename(bad)
    with pytest.raises(ValueError, match="SHA-256"):
        build_prefix("alexnet", "C2", "mean", str(bad))


def test_cube_is_the_papers_input():
    g = torch.arange(8.0).view(8, 1, 1).expand(8, 2, 2)  # I_t = t
    d = cube(g[:HISTORY], g[HISTORY:])  # D for t = 5, 6, 7
    # I'_t = t - 0.5; D_t = (I'_t, I'_{t-2}, I'_{t-4})
    assert d[:, :, 0, 0].tolist() == [[4.5, 2.5, 0.5], [5.5, 3.5, 1.5], [6.5, 4.5, 2.5]]


# ---------------------------------------------------------------- cascade, CT, localization
def test_region_scores_reproduce_the_cascade(fitted, scene):
    frames = scene.test[0].read(0, 10)
    feats = fitted._features({}, frames)
    d1, d2, label = vadx.ops.mahalanobis_cascade(
        feats, fitted.mu1_, fitted.w1_, fitted.beta_, fitted.alpha_, fitted.ct_weight_,
        fitted.ct_bias_, fitted.mu2_, fitted.w2_, fitted.phi_)
    s = region_scores(d1, d2, label, fitted.alpha_, fitted.phi_)
    assert torch.equal(s >= 1, (label == 1) | (label == 2))
    assert (label >= 2).any()  # stage 2 ran somewhere


def test_g1_alone_is_the_cascade_without_stage_2(scene, fitted, tmp_path):
    """stages=1: beta = alpha, an empty stage 2, region score d1 / alpha; its frame scores equal
    the two-stage detector's with beta_quantile = alpha_quantile (same G1, same sample)."""
    params = {**SMALL, "stages": 1}
    torch.manual_seed(0)
    g1 = vadx.create("fcn-cascade", **params).fit(scene.train)
    assert g1.beta_ == g1.alpha_ and g1.ct_weight_.shape == (0, g1.mu1_.numel())
    assert g1.train_info_["ae_loss"] == []
    frames = scene.test[0].read(0, 12)
    feats = g1._features({}, frames)
    # d1 by hand: ||W1 (x - mu1)|| per region, independent of the op
    x = feats.permute(0, 2, 3, 1).double()
    d1 = torch.linalg.vector_norm((x - g1.mu1_.double()) @ g1.w1_.double().T, dim=-1)
    s = g1.score(frames)
    torch.testing.assert_close(s.frame.double(), (d1 / g1.alpha_).flatten(1).amax(1), rtol=1e-4,
                               atol=1e-6)
    torch.manual_seed(0)
    same_g1 = vadx.create("fcn-cascade", **SMALL, beta_quantile=0.9999,
                          alpha_quantile=0.9999).fit(scene.train)
    torch.testing.assert_close(same_g1.score(frames).frame, s.frame)
    g1.save(tmp_path / "g1.vadx")
    back = vadx.load(tmp_path / "g1.vadx")
    assert back.stages == 1 and torch.equal(back.score(frames).frame, s.frame)
    assert vadx.load(_saved(fitted, tmp_path)).stages == 2


def _saved(det, tmp_path):
    det.save(tmp_path / "two.vadx")
    return tmp_path / "two.vadx"


@pytest.mark.parametrize("size, jump, offset, zeta", [
    ((51, 51), (8, 8), (18, 18), 3),  # AlexNet C2
    ((43, 43), (8, 8), (21, 21), 3),  # MobileNetV2 features[:6]
    ((11, 19), (4, 8), (2, 0), 1),  # AlexNet C1 rows, non-square, fields cut by the frame
])
def test_order_map_matches_rollback_coverage(size, jump, offset, zeta):
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(3, 9, 12, generator=g) * 2
    geo = {"size": list(size), "jump": list(jump), "offset": list(offset)}
    m = order_map(scores, geo, (70, 95), zeta=zeta)
    for theta in (0.3, 1.0, 1.7):
        cov = rollback_coverage((scores >= theta).float(), size, jump, offset, (70, 95))
        assert torch.equal(m >= theta, cov > zeta)
    torch.testing.assert_close(coverage_map(scores >= 1, geo, (70, 95)),
                               rollback_coverage((scores >= 1).float(), size, jump, offset, (70, 95)))


def test_coverage_maps_mode(scene, fitted, tmp_path):
    fitted.save(tmp_path / "m.vadx")
    det = vadx.load(tmp_path / "m.vadx")
    det.maps = "coverage"
    frames = scene.test[0].read(0, 8)
    s = det.score(frames)
    assert torch.equal(s.maps == s.maps.round(), torch.ones_like(s.maps, dtype=torch.bool))
    det.maps = None
    assert det.score(frames).maps is None


def test_sparse_autoencoder_learns_a_sparse_code():
    g = torch.Generator().manual_seed(0)
    x = torch.relu(torch.randn(1500, 16, generator=g) @ torch.randn(16, 16, generator=g)) * 10 + 5
    kw = dict(epochs=6, rho=0.05, sparsity_weight=3.0, weight_decay=1e-4, lr=1e-2, batch_size=64,
              seed=0, progress=False)
    w, b, losses = train_sparse_ae(x, 40, **kw)
    assert w.shape == (40, 16) and b.shape == (40,)
    assert losses[-1] < losses[0]
    z = torch.sigmoid(x @ w.T + b)  # the CT layer acts on raw features (standardisation folded)
    assert float(z.mean()) < 0.3  # pushed towards rho = 0.05 from about 0.5 at the start
    w2, b2, _ = train_sparse_ae(x, 40, **kw)
    assert torch.equal(w, w2) and torch.equal(b, b2)  # seeded


# ---------------------------------------------------------------- real data
@pytest.mark.skipif(not (MOBILENET.is_file() and PED2.is_dir()),
                    reason="needs ../shared/weights/mobilenet_v2_imagenet.pth and ../shared/data/ucsd_ped2")
def test_ped2_short_clip_with_mobilenet():
    """Fit on the first 60 frames of training video 01 (half size); test video 04 turns anomalous
    at its 31st frame: score its first 60 frames (30 normal, 30 anomalous)."""
    ds = vadx.data.load("ucsd-ped2", PED2, size=(120, 180), chunk_size=60)
    train = torch.as_tensor(next(iter(ds.train[0])))
    det = vadx.create("fcn-cascade", backbone="mobilenet_v2", weights=str(MOBILENET), hidden=32,
                      ae_epochs=2, max_regions=5000, progress=False).fit([train])
    assert det.fcn_info_["verified"] and det.fcn_info_["relu6"] is False
    video = ds.test[3]
    frames = torch.as_tensor(next(iter(video)))
    labels = np.asarray(video.labels)[:60]
    assert labels[:30].sum() == 0 and labels[30:].all()
    s = det.score(frames)
    assert torch.isfinite(s.frame).all() and s.maps.shape == (60, 120, 180)
    assert roc_auc(s.frame.numpy(), labels) > 0.7


# ---------------------------------------------------------------- options from the Ped2 ablation
def test_mobilenet_taps_inside_the_block():
    for tap, size, m in (("block", 43, 32), ("expand", 43, 192), ("depthwise", 59, 192)):
        body, _ = build_prefix("mobilenet_v2", "C2", "mean", "random", tap=tap)
        assert geometry(body)["size"] == [size, size] and geometry(body)["jump"] == [8, 8]
        assert out_channels(body) == m
        assert body(torch.zeros(1, 3, 64, 64)).shape == (1, m, 8, 8)
    body, _ = build_prefix("mobilenet_v2", "C1", "mean", "random", tap="expand")
    assert out_channels(body) == 144 and geometry(body)["size"] == [11, 11]


def test_position_normalised_frame_scores(scene, tmp_path):
    det = vadx.create("fcn-cascade", **SMALL, region_norm="position").fit(scene.train)
    assert det.pos_mean_.shape == det.pos_std_.shape and (det.pos_std_ > 0).all()
    frames = scene.test[0].read(0, 10)
    region = det._regions({}, frames)
    s = det.score(frames)
    z = ((region - det.pos_mean_) / det.pos_std_).flatten(1).amax(1)
    torch.testing.assert_close(s.frame, z)
    # the training frames' scores (threshold_) are the same rule
    assert float((det.decision_scores_ > det.threshold_).float().mean()) <= 0.02
    det.save(tmp_path / "m.vadx")
    assert torch.equal(vadx.load(tmp_path / "m.vadx").score(frames).frame, s.frame)


def test_position_normalisation_contract():
    check_detector(FCNCascade, weights="random", hidden=8, ae_epochs=1, max_regions=1000,
                   region_norm="position", stream_tol=(1e-4, 1e-5))


def test_mobilenet_channels_last_is_bit_identical_after_load(scene, tmp_path):
    """The MobileNetV2 prefix runs channels_last; a loaded detector must build it the same way
    (load_state_dict keeps the parameters' layout) and score bit-identically."""
    det = vadx.create("fcn-cascade", **{**SMALL, "backbone": "mobilenet_v2"}, cut=4,
                      tap="depthwise").fit(scene.train)
    assert det.fcn_[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    frames = scene.test[0].read(0, 10)
    det.save(tmp_path / "m.vadx")
    back = vadx.load(tmp_path / "m.vadx")
    assert back.fcn_[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    a, b = det.score(frames), back.score(frames)
    assert torch.equal(a.frame, b.frame) and torch.equal(a.maps, b.maps)
    assert det.fcn_info_["cut"] == 4 and det.fcn_info_["tap"] == "depthwise"


def test_mobilenet_options_are_checked():
    with pytest.raises(vadx.ParameterError, match="cut"):
        FCNCascade(cut=4)  # AlexNet (the default backbone) has no MobileNetV2 cut
    with pytest.raises(vadx.ParameterError, match="tap"):
        FCNCascade(tap="expand")
    with pytest.raises(vadx.ParameterError, match="cut"):
        FCNCascade(backbone="mobilenet_v2", cut=1)


def test_mobilenet_default_tap():
    from vadx_fcn_cascade.fcn import MOBILENET_DEFAULT, mobilenet_tap
    assert mobilenet_tap("C2", None, None) == MOBILENET_DEFAULT["C2"]
    assert mobilenet_tap("C2", 6, None) == (6, "block")  # the receptive-field rule's old default
    assert mobilenet_tap("C2", None, "block") == (MOBILENET_CUTS["C2"], "block")
    assert mobilenet_tap("C1", None, None) == (MOBILENET_CUTS["C1"], "block")
    cut, tap = MOBILENET_DEFAULT["C2"]
    a = build_prefix("mobilenet_v2", "C2", "mean", "random")[0]
    b = build_prefix("mobilenet_v2", "C2", "mean", "random", cut=cut, tap=tap)[0]
    assert geometry(a) == geometry(b) and out_channels(a) == out_channels(b)

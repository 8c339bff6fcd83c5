"""The ``tsc`` and ``srnn-ae`` detectors (plugins/vadx_sparse_rnn): features, detection on the
synthetic scene and on the paper's toy setting, the detector contract (vadx.testing), the
feature-level fit path, the ResNet path, method-specific bad input.

Tiny models (few atoms and iterations, 60 x 80 frames) keep the file fast; Ped2 accuracy and
speed are in bench/test_sparse_rnn.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SHARED

import vadx
from vadx.data import synthetic
from vadx.features import sha256_file
from vadx.metrics import roc_auc
from vadx.testing import check_detector, make_video
from vadx_sparse_rnn import SRNNAE, TSC
from vadx_sparse_rnn.features import feature_map, frame_features, pyramid_pool

pytestmark = pytest.mark.usefixtures("one_thread")

MOBILENET = SHARED / "weights" / "mobilenet_v2_imagenet.pth"
TINY = {"tsc": dict(K=10, n_atoms=64, iterations=25),
        "srnn-ae": dict(n_atoms=64, iterations=40, lr=1e-3)}


def _weights():
    return str(MOBILENET) if MOBILENET.is_file() else "random"


def _make(name, **kw):
    params = dict(backbone="mobilenet_v2", weights=_weights(), progress=False, **TINY[name])
    params.update(kw)
    return vadx.create(name, **params)


@pytest.fixture(scope="module")
def scene():
    ds = synthetic.make_dataset(3, n_train=2, n_test=2, n_frames=48, height=60, width=80,
                                kinds=("appearance",))
    return ([torch.as_tensor(v.read()) for v in ds.train],
            [(torch.as_tensor(v.read()), np.asarray(v.labels)) for v in ds.test])


@pytest.fixture(scope="module", params=["tsc", "srnn-ae"])
def fitted(request, scene):
    train, _ = scene
    return _make(request.param).fit(train)


# ---------------------------------------------------------------------------- features
@pytest.mark.parametrize("name,channels", [("mobilenet_v2", 96), ("resnet18", 256)])
def test_stride16_layer(name, channels):
    net = vadx.features.load_backbone(name, "random").eval()
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 96)
        assert feature_map(net, x, "stride16").shape == (1, channels, 4, 6)
        assert torch.equal(feature_map(net, x, "last"), net.forward_features(x))
    with pytest.raises(ValueError, match="layer"):
        feature_map(net, x, "stride8")
    frames = torch.randint(0, 256, (2, 1, 64, 96), dtype=torch.uint8)
    assert frame_features(net, {}, frames, layer="stride16")[0].shape == (2, 21, channels)


def test_pyramid_pool_21_regions():
    maps = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    out = pyramid_pool(maps)
    assert out.shape == (2, 21, 3)
    assert torch.equal(out[:, 0], maps.amax(dim=(2, 3)))  # 1x1: the whole map
    assert torch.equal(out[:, 1], maps[:, :, :2, :2].amax(dim=(2, 3)))  # 2x2, top left
    assert torch.equal(out[:, 5:], maps.flatten(2).transpose(1, 2))  # 4x4 on a 4x4 map: cells
    assert pyramid_pool(torch.rand(1, 5, 2, 3)).shape == (1, 21, 5)  # maps smaller than 4x4


def test_temporal_features_max_over_4_frames_and_short_history():
    net = vadx.features.load_backbone("mobilenet_v2", "random").eval()
    frames = torch.randint(0, 256, (6, 1, 64, 64), dtype=torch.uint8)
    xs, xt = frame_features(net, {}, frames)
    with torch.no_grad():
        maps = net.forward_features(vadx.features.imagenet_normalize(frames))
    assert xs.shape == xt.shape == (6, 21, 1280)
    for t in range(6):  # first frames: the max over the frames there are
        want = pyramid_pool(maps[max(0, t - 3):t + 1].amax(0, keepdim=True))[0]
        torch.testing.assert_close(xt[t], want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(xs, pyramid_pool(maps), rtol=1e-5, atol=1e-5)
    state = {}  # chunked: the 3-frame history carries over
    parts = [frame_features(net, state, frames[a:b]) for a, b in ((0, 1), (1, 3), (3, 6))]
    torch.testing.assert_close(torch.cat([p[1] for p in parts]), xt, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------- detection
def test_synthetic_scene_beats_chance(fitted, scene):
    _, test = scene
    scores = np.concatenate([fitted.score(v).frame.numpy() for v, _ in test])
    labels = np.concatenate([lab for _, lab in test])
    auc = roc_auc(scores, labels)
    assert auc > 0.8, f"{fitted.name}: frame AUC {auc:.3f} on the synthetic appearance anomalies"
    assert np.isfinite(fitted.threshold_)
    s = fitted.score(test[0][0])
    assert set(s.extras) == {"spatial_error", "temporal_error", "spatial_patch", "temporal_patch"}
    assert int(s.extras["spatial_patch"].max()) < 21


def _moving_shapes(T, seed, box_from=None):
    """The paper's toy setting in small (its Moving-MNIST appearance anomaly): two dark squares
    bounce around a grey 48 x 64 frame; from ``box_from`` on a white box is in the frame."""
    g = np.random.default_rng(seed)
    pos = g.uniform([0, 0], [40, 56], (2, 2))
    vel = g.choice([-2.0, -1.0, 1.0, 2.0], (2, 2))
    frames = np.empty((T, 1, 48, 64), np.uint8)
    for t in range(T):
        f = np.full((48, 64), 110.0) + g.normal(0, 2, (48, 64))
        for (y, x) in pos:
            f[int(y):int(y) + 8, int(x):int(x) + 8] = 40
        if box_from is not None and t >= box_from:
            f[18:32, 26:40] = 255
        frames[t, 0] = np.clip(f, 0, 255)
        pos += vel
        for k in range(2):
            for ax, hi in ((0, 40), (1, 56)):
                if not 0 <= pos[k, ax] <= hi:
                    vel[k, ax] *= -1
                    pos[k, ax] = np.clip(pos[k, ax], 0, hi)
    return torch.from_numpy(frames)


@pytest.mark.parametrize("name", ["tsc", "srnn-ae"])
def test_toy_white_box_appearance_anomaly(name):
    det = _make(name).fit([_moving_shapes(40, s) for s in range(2)])
    onset = 20
    scores = det.score(_moving_shapes(40, 7, box_from=onset)).frame.numpy()
    labels = np.arange(40) >= onset
    assert roc_auc(scores, labels) > 0.95
    assert scores[onset:].min() > scores[:onset].max()  # every box frame above every normal one


# ---------------------------------------------------------------------------- contract, fit paths
CHEAP = {TSC: dict(K=5, n_atoms=16, iterations=5), SRNNAE: dict(n_atoms=16, iterations=5, lr=1e-3)}


@pytest.mark.parametrize("cls", [TSC, SRNNAE], ids=["tsc", "srnn-ae"])
def test_contract(cls):
    """vadx.testing's checks (streaming == offline within float tolerance, as before: batched
    float sums in the backbone and SISTA depend on the chunk length), then the method's own fit
    paths: ``fit_features`` on shared features equals ``fit``, and another seed another model."""
    params = dict(backbone="mobilenet_v2", weights=_weights(), progress=False, **CHEAP[cls])
    det = check_detector(cls, stream_tol=(1e-4, 1e-3), **params)
    assert det.train_loss_["spatial"]["last"] is not None
    videos = [make_video(30, 48, 64, 1, seed=i) for i in range(2)]  # check_detector's training set
    twin = cls(**params)
    twin._load_backbone()
    train_scores = twin.fit_features([twin.extract_features([v]) for v in videos])
    assert torch.equal(train_scores, det.decision_scores_) and twin.threshold_ == det.threshold_
    assert twin.input_shape_ is None  # not known from features: any frames of the backbone's C
    test = make_video(20, 48, 64, 1, seed=5)
    assert torch.equal(twin.score(test).frame, det.score(test).frame)
    other = cls(**{**params, "seed": 1}).fit(videos)
    assert not torch.equal(other.spatial_.A, det.spatial_.A)


def test_resnet18_by_path(tmp_path, scene):
    """The paper's backbone family: a torchvision-style resnet18 file, loaded by path, checked."""
    torch.manual_seed(0)
    raw = tmp_path / "resnet18.pth"
    torch.save(vadx.features.resnet18().state_dict(), raw)
    path = tmp_path / f"resnet18-{sha256_file(raw)[:8]}.pth"  # torchvision's naming
    raw.rename(path)
    det = vadx.create("tsc", backbone="resnet18", weights=str(path), layer="last", K=5, n_atoms=16,
                      iterations=3, progress=False).fit([v[:16] for v in scene[0]])
    assert det.feature_dim_ == 512 and det.weights_info_["verified"]
    assert det.weights_info_["file"] == path.name
    assert det.score(scene[1][0][0][:6]).frame.shape == (6,)
    bad = tmp_path / "resnet18-00000000.pth"
    path.rename(bad)
    with pytest.raises(ValueError, match="SHA-256"):
        vadx.create("tsc", backbone="resnet18", weights=str(bad), iterations=1, progress=False
                    ).fit([scene[0][0][:16]])


# ---------------------------------------------------------------------------- bad input
def test_bad_weights_file_and_sequence_length(scene, tmp_path):
    with pytest.raises(FileNotFoundError, match="no file"):
        vadx.create("tsc", backbone="mobilenet_v2", weights=str(tmp_path / "none.pth")).fit([scene[0][0]])
    with pytest.raises(ValueError, match="sequence_length must be at most the longest training video"):
        _make("tsc", sequence_length=100).fit([scene[0][0][:12]])
    with pytest.raises(ValueError, match="layer"):
        vadx.create("srnn-ae", layer="conv5")


def test_coder_training_runs_on_one_thread_and_restores_the_count(scene, monkeypatch):
    import vadx_sparse_rnn.tsc as tsc_module
    seen = []
    fit = tsc_module.TSCCoder.fit

    def spy(self, *a, **kw):
        seen.append(torch.get_num_threads())
        return fit(self, *a, **kw)

    monkeypatch.setattr(tsc_module.TSCCoder, "fit", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _make("tsc", iterations=2).fit(scene[0][:1])
        assert seen == [1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    from vadx.threads import intra_op_threads
    with pytest.raises(ValueError, match=r"n must be >= 1 or None, got 0"):
        with intra_op_threads(0):
            pass

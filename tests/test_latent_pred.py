"""latent-pred (plugins/vadx_latent_pred): the U-Net with previous-frame skips, the Conv3D motion
model, training, the cached-code stream and maps. The generic contract (parameters, streaming ==
offline, files, bad input) is :func:`vadx.testing.check_detector`'s. Small models on the synthetic
scene; the Ped2 accuracy and speed targets are in bench/test_latent_pred.py."""

import numpy as np
import pytest
import torch
from conftest import SHARED

import vadx
import vadx.data
from vadx.metrics import roc_auc
from vadx.testing import check_detector, make_video
from vadx_latent_pred import LatentPred
from vadx_latent_pred.model import Decoder, Encoder, LatentPredNet, MotionModel, TimeStridedConv3d
from vadx_latent_pred.preprocess import model_size
from vadx_latent_pred.training import clip_losses, clips_of

PED2 = SHARED / "data" / "ucsd_ped2"

pytestmark = pytest.mark.usefixtures("one_thread")

# A small network at 64 px height for the 120x160 synthetic scene (64x88 input, 8x11 codes), with
# a short window (k = 4, 4 frames ahead) and 6 epochs at a large rate: about 10 s on one core.
# It learns both kinds: appearance AUC ~0.97 and speed AUC ~0.85 (untrained: ~0.3 and ~0.58).
SMALL = dict(input_height=64, encoder_blocks=3, channels=[8, 16, 32], motion_hidden=32, k=4,
             horizon=4, clip_length=24, epochs=6, stage1_epochs=1, lr=3e-3, lr_step=100,
             progress=False, seed=0)
# A tiny network for the contract and the seeding checks (a fit takes well under a second).
TINY = dict(input_height=32, encoder_blocks=2, channels=[4, 8], motion_hidden=8, epochs=2,
            stage1_epochs=1, k=4, horizon=2, clip_length=12, progress=False)


@pytest.fixture(scope="module")
def scene():
    # appearance and speed anomalies only (the ones tested), four clips of each
    return vadx.data.load("synthetic", seed=0, n_train=4, n_test=8, n_frames=100,
                          kinds=("appearance", "speed"))


@pytest.fixture(scope="module")
def fitted(scene):
    return vadx.create("latent-pred", **SMALL).fit(scene.train)


# ---------------------------------------------------------------- the networks


def test_unet_shapes():
    enc, dec = Encoder(1, (8, 16, 32, 32)), Decoder(1, (8, 16, 32, 32))
    feats = enc(torch.randn(3, 1, 128, 192))
    assert [tuple(f.shape) for f in feats] == [(3, 8, 64, 96), (3, 16, 32, 48), (3, 32, 16, 24),
                                               (3, 32, 8, 12)]
    assert dec(feats[-1], feats[:-1]).shape == (3, 1, 128, 192)
    with pytest.raises(ValueError, match="skips must hold 3 maps"):
        dec(feats[-1], feats[:-2])


def test_reconstruction_uses_previous_frame_skips(monkeypatch):
    """Frame q is decoded from its own code and the skip maps of frame q - 1 (Sec. 3.1)."""
    torch.manual_seed(0)
    net = LatentPredNet(1, (4, 8, 8), 8).eval()
    x = torch.randn(1, 16, 1, 32, 48)
    seen = {}
    real = net.decoder.forward

    def spy(z, skips):
        seen["z"], seen["skips"] = z, skips
        return real(z, skips)

    monkeypatch.setattr(net.decoder, "forward", spy)
    with torch.no_grad():
        clip_losses(net, x, k=4, horizon=3)
        feats = net.encoder(x[0])
    torch.testing.assert_close(seen["z"], feats[-1][1:])  # codes of frames 1..15
    for got, f in zip(seen["skips"], feats[:-1]):
        torch.testing.assert_close(got, f[:-1])  # skip maps of frames 0..14
    # and the decoder's output changes with the skips it is given (they are used)
    assert not torch.allclose(real(feats[-1][1:2], [f[:1] for f in feats[:-1]]),
                              real(feats[-1][1:2], [f[1:2] for f in feats[:-1]]))


@pytest.mark.parametrize("k", [8, 6, 3])
def test_motion_model_shape(k):
    m = MotionModel(16, 24)
    assert m(torch.randn(2, 16, k, 8, 12)).shape == (2, 16, 8, 12)
    strided = [layer for layer in m.net if isinstance(layer, TimeStridedConv3d)]
    assert len(strided) == 3 and all(layer.kernel_size == (3, 3, 3) and layer.stride == (2, 1, 1)
                                     for layer in strided)


@pytest.mark.parametrize("t", [8, 6, 5, 1])
def test_time_strided_conv_equals_conv3d(t):
    conv = TimeStridedConv3d(3, 5).double()
    x = torch.randn(2, 3, t, 4, 6, dtype=torch.float64)
    ref = torch.nn.functional.conv3d(x, conv.weight, None, (2, 1, 1), 1)
    torch.testing.assert_close(conv(x), ref)


def test_model_size_reproduces_table1():
    assert model_size((240, 360), 128, 16) == (128, 192)  # UCSD
    assert model_size((360, 640), 128, 16) == (128, 224)  # Avenue
    assert model_size((480, 856), 128, 16) == (128, 224)  # ShanghaiTech


def test_clips_cover_every_window():
    k_h, L = 14, 32
    lengths = [120, 32, 20, 13]
    clips = clips_of(lengths, L, k_h)
    for v, n in enumerate(lengths):
        covered = set()
        for cv, s, m in clips:
            if cv == v:
                assert 0 <= s and s + m <= n and m >= k_h
                covered |= set(range(s, s + m - k_h + 1))
        assert covered == set(range(max(0, n - k_h + 1)))
    assert not [c for c in clips if c[0] == 3]  # shorter than k + horizon: no window


# ---------------------------------------------------------------- the detector


def test_registered():
    assert "latent-pred" in vadx.list_detectors()
    det = vadx.create("latent-pred")
    assert isinstance(det, LatentPred) and (det.k, det.horizon, det.encoder_blocks) == (8, 6, 4)


def test_contract():
    det = check_detector(LatentPred, stream_tol=(1e-5, 1e-7), maps=True, **TINY)
    # 48x64 frames -> 32x44 input (aspect kept, width a multiple of 2 ** encoder_blocks)
    assert det.size_ == [32, 44] and det.background_.shape == (1, 32, 44)
    assert det.train_log_["stage2_from_epoch"] == 1
    assert [e["stage"] for e in det.train_log_["epochs"]] == [1, 2]


def test_seed_sets_weights_and_training():
    videos = [make_video(24, 48, 64, seed=i) for i in range(2)]
    a, b, c = (vadx.create("latent-pred", seed=s, **TINY).fit(videos) for s in (1, 1, 2))
    assert a.train_log_ == b.train_log_ and a.train_log_ != c.train_log_
    wa, wb, wc = (d.net_.state_dict()["encoder.blocks.0.0.weight"] for d in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_detects_speed_and_appearance_anomalies(fitted, scene):
    by_kind = {}
    for v in scene.test:
        s = fitted.score(v).frame.numpy()
        assert s.shape == (len(v.labels),) and np.isfinite(s).all()
        by_kind.setdefault(v.meta["kind"], ([], []))
        by_kind[v.meta["kind"]][0].append(s)
        by_kind[v.meta["kind"]][1].append(v.labels)
    aucs = {k: roc_auc(np.concatenate(s), np.concatenate(y)) for k, (s, y) in by_kind.items()}
    print("synthetic frame AUC by kind:", aucs)
    assert aucs["appearance"] > 0.8, aucs
    assert aucs["speed"] > 0.7, aucs


def test_warmup_frames_get_the_median_training_score(fitted, scene):
    s = fitted.score(scene.test[0]).frame
    need = fitted.k + fitted.horizon - 1
    assert torch.all(s[:need] == fitted.warmup_score_)
    assert s[need] != fitted.warmup_score_ and torch.isfinite(s).all()
    assert fitted.threshold_ >= fitted.warmup_score_ > 0


def test_maps_localize_and_stream(fitted, scene):
    fitted.maps = True
    try:
        video = scene.test[0]  # appearance anomaly
        frames = video.read()
        s = fitted.score(frames)
        assert s.maps.shape == (frames.shape[0], *frames.shape[-2:])
        need = fitted.k + fitted.horizon - 1
        assert torch.all(s.maps[:need] == 0) and torch.all(s.maps >= 0)
        stream = fitted.stream()
        chunked = torch.cat([stream.update(frames[i:i + n]).maps
                             for i, n in ((0, 3), (3, 17), (20, 1), (21, 100))])
        torch.testing.assert_close(chunked, s.maps, rtol=1e-4, atol=1e-6)
        masks = np.concatenate(list(video.masks))
        inside = s.maps.numpy()[masks].mean()
        outside = s.maps.numpy()[~masks & (np.arange(len(masks)) >= need)[:, None, None]].mean()
        assert inside > 2 * outside, (inside, outside)  # the P-MSE map lights up the anomaly
    finally:
        fitted.maps = False


# ---------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("params, match", [
    (dict(input_height=100), r"input_height must be a multiple of 2 \*\* encoder_blocks = 16, got 100"),
    (dict(input_height=8, encoder_blocks=4), r"input_height must be a multiple of 2 \*\* encoder_blocks = 16, got 8"),
    (dict(channels=[8, 16]), r"channels must be a list of >= encoder_blocks = 4 positive ints, got \[8, 16\]"),
    (dict(clip_length=10), r"clip_length must be an int >= k \+ horizon = 14, got 10"),
    (dict(k=4, horizon=2, clip_length=5), r"clip_length must be an int >= k \+ horizon = 6, got 5"),
])
def test_parameters_that_depend_on_each_other(params, match):
    with pytest.raises(vadx.ParameterError, match="^latent-pred: " + match):
        vadx.create("latent-pred", **params)


def test_training_videos_must_hold_a_window_and_agree():
    short = [torch.zeros(10, 1, 32, 32, dtype=torch.uint8)]
    with pytest.raises(ValueError, match=r"videos: every training video is shorter than k \+ horizon = 14"):
        vadx.create("latent-pred", progress=False).fit(short)
    mixed = [torch.zeros(20, 1, 32, 32, dtype=torch.uint8), torch.zeros(20, 3, 32, 32, dtype=torch.uint8)]
    with pytest.raises(ValueError, match=r"videos: all training frames must have C = 1 channels"):
        vadx.create("latent-pred", progress=False).fit(mixed)


def test_ped2_clip_gets_the_papers_input_size():
    root = PED2 / "training" / "frames"
    if not root.is_dir():
        pytest.skip(f"UCSD Ped2 not found at {PED2}")
    ds = vadx.data.load("ucsd-ped2", PED2)
    clip = ds.train[0].read(0, 20)
    det = vadx.create("latent-pred", epochs=1, clip_length=20, progress=False).fit([clip])
    assert tuple(clip.shape[1:]) == (1, 240, 360) and det.size_ == [128, 192]
    assert det.score(clip).frame.shape == (20,)

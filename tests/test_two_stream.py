"""two-stream (Petrocchi et al.): the contract, sampling, hard mining, SAS, learning, fit_features,
Grad-CAM, bag-of-objects."""

import pytest
import torch
from conftest import SHARED
from helpers import make_video

import vadx
import vadx.precision
from vadx import plugins
from vadx.metrics import roc_auc
from vadx.objects import Detections, ObjectDetector
from vadx.ops.accumulator_score import accumulator_score
from vadx.testing import check_detector
from vadx_two_stream import TwoStream

pytestmark = pytest.mark.usefixtures("one_thread")

MNV2 = SHARED / "weights" / "mobilenet_v2_imagenet.pth"
needs_mnv2 = pytest.mark.skipif(not MNV2.is_file(), reason="shared MobileNetV2 weights absent")

FAST = dict(backbone="mobilenet_v2", input_size=64, hidden=64, head_lr=1e-3, finetune_lr=1e-5,
            max_epochs=25, finetune_max_epochs=1, source_fps=10.0, batch_size=8, progress=False)


def clip(seed, T=50):
    """A walking square; frames of one segment have a bright square jumping 8 px/frame (label 1)."""
    start = 5 + (seed * 7) % (T - 20)
    fast = set(range(start, min(start + 12, T - 2)))
    lab = torch.zeros(T, dtype=torch.long)
    lab[sorted(fast)] = 1
    return make_video(T, H=48, W=64, fast=fast, seed=seed), lab


@pytest.fixture(scope="module")
def data():
    return [clip(s) for s in range(4)]


@pytest.fixture(scope="module")
def fitted(data):
    if not MNV2.is_file():
        pytest.skip("shared MobileNetV2 weights absent")
    det = vadx.create("two-stream", weights=str(MNV2), validation_videos=[3], **FAST)
    det.fit([v for v, _ in data], [y for _, y in data])
    return det


def test_contract():
    # random MobileNetV2 streams at 32 px, a tiny classifier, phase 1 and a one-epoch phase 2;
    # the default seeded validation split (one of the 4 videos)
    det = check_detector(TwoStream, backbone="mobilenet_v2", weights="random", input_size=32,
                         hidden=16, max_epochs=2, finetune_max_epochs=1, batch_size=8)
    assert det.threshold_ == det.alarm_threshold == 0.5
    # precision resolved at fit and kept; check_detector's save/load round trip was bit-identical
    # with the channels-last backbones
    assert det.precision_ == vadx.precision.resolve("auto", torch.device("cpu"))
    assert det.net_.rgb.features[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert "phase2" in det.history_ and ((det.decision_scores_ > 0) & (det.decision_scores_ < 1)).all()


def test_adaptive_sampling_rates():
    from vadx_two_stream.training import adaptive_sample

    lab = torch.tensor([0] * 30 + [1] * 30 + [-1] * 10 + [0] * 5)
    idx = adaptive_sample(lab, source_fps=30, anomaly_fps=10, normal_fps=3)
    assert idx.tolist() == [0, 10, 20] + list(range(30, 60, 3)) + [70]
    # at or above the source rate every frame of the segment is taken; excluded frames never
    assert adaptive_sample(lab, source_fps=10, anomaly_fps=10, normal_fps=3).tolist() == \
        [0, 3, 6, 10, 13, 16, 20, 23, 26] + list(range(30, 60)) + [70, 73]
    with pytest.raises(ValueError, match="normal_fps must be a positive number, got 0"):
        adaptive_sample(lab, source_fps=30, anomaly_fps=10, normal_fps=0)


def test_hard_mining_picks_the_k_highest_losses():
    from vadx_two_stream.training import hard_mine, weighted_bce

    losses = torch.rand(96, generator=torch.Generator().manual_seed(0))
    picked = hard_mine(losses, 32)
    assert set(picked.tolist()) == set(losses.argsort(descending=True)[:32].tolist())
    assert hard_mine(losses[:5], 32).numel() == 5
    # class weights: an anomaly's loss counts twice a normal one's at the same error
    w = weighted_bce(torch.zeros(2), torch.tensor([0.0, 1.0]), 1.0, 2.0)
    assert torch.allclose(w[1], 2 * w[0])


@pytest.mark.parametrize("keep_start", [False, True])
def test_a_phase_that_only_hurts_keeps_its_starting_weights_with_keep_start(keep_start):
    """Phase 2 on Ped2 raised the validation loss from its first epoch on: with ``keep_start``
    the weights it started from win (best_epoch 0), without it the best epoch's are kept."""
    from torch import nn
    from vadx_two_stream.training import run_phase

    model = nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    x, y = torch.randn(64, 3, generator=torch.Generator().manual_seed(0)), torch.ones(64)
    # any step moves the weights away from 0, where this validation loss is lowest
    h = run_phase(model=model, params=list(model.parameters()), logits_of=lambda i: model(x[i]).squeeze(1),
                  targets=y, val_loss=lambda: float(model.weight.detach().abs().sum() + model.bias.detach().abs().sum()),
                  lr=0.1, batch_size=8, alpha=1, normal_weight=1.0, anomaly_weight=1.0, patience=2,
                  max_epochs=5, generator=torch.Generator().manual_seed(0), train_mode=lambda f: None,
                  progress=False, desc="test", keep_start=keep_start)
    moved = bool(model.weight.abs().sum() > 0)
    if keep_start:
        assert h["best_epoch"] == 0 and h["start_val_loss"] == 0.0 and not moved
    else:
        assert h["best_epoch"] == 1 and moved and "start_val_loss" not in h


def test_sas_removes_isolated_false_spikes():
    det = vadx.create("two-stream")
    sigma = torch.full((60,), 0.1)
    sigma[[10, 25, 40]] = 0.97  # isolated false positives of the classifier
    sigma[50:60] = 0.9  # a sustained anomaly (from LB = -7, +1.6 per frame: above 0.5 at its 5th frame)
    nu = det.step_per_frame(30.0)  # the paper's 30 frames/s: nu = 2 per frame
    assert nu == 2.0
    s, _ = accumulator_score(sigma, det.tau, nu, det.lb, det.ub, det.lb, det.sas_decay)
    assert (sigma[:50] > 0.5).sum() == 3 and (s[:50] < 0.5).all()  # spikes filtered
    assert (s[54:60] > 0.5).all() and (s[50:54] < 0.5).all()  # the sustained anomaly alarms


def test_sas_reacts_within_the_same_time_at_any_frame_rate():
    det = vadx.create("two-stream")  # nu_per_second = 60: the paper's 2 per frame at 30 frames/s
    assert (det.step_per_frame(30.0), det.step_per_frame(10.0)) == (2.0, 6.0)
    assert det.step_per_frame(None) == 2.0  # source_fps (30) when the video does not say
    assert vadx.create("two-stream", nu=2.0).step_per_frame(10.0) == 2.0  # a fixed step per frame

    def alarm_after(fps):
        """Seconds from the start of a sustained anomaly (sigma 0.9) to the first alarm."""
        n = round(2 * fps)
        sigma = torch.cat([torch.full((n,), 0.1), torch.full((n,), 0.9)])
        s, _ = accumulator_score(sigma, det.tau, det.step_per_frame(fps), det.lb, det.ub, det.lb,
                                 det.sas_decay)
        return (int((s[n:] > 0.5).nonzero()[0]) + 1) / fps

    at10, at30 = alarm_after(10.0), alarm_after(30.0)
    assert abs(at10 - at30) <= 1 / 10 and 0 < at30 < 0.5
    # with the paper's literal step per frame, a 10 frames/s video alarms three times later
    fixed = vadx.create("two-stream", nu=2.0)
    sigma = torch.cat([torch.full((20,), 0.1), torch.full((20,), 0.9)])
    s, _ = accumulator_score(sigma, fixed.tau, fixed.step_per_frame(10.0), fixed.lb, fixed.ub,
                             fixed.lb, fixed.sas_decay)
    assert (int((s[20:] > 0.5).nonzero()[0]) + 1) / 10 > 2 * at10


@needs_mnv2
def test_sas_step_follows_the_video_frame_rate(fitted):
    from vadx.io import open_video

    v, _ = clip(12)
    at30, at10 = fitted.score(v, fps=30.0), fitted.score(v, fps=10.0)
    assert torch.equal(at30.extras["confidence"], at10.extras["confidence"])
    x = torch.full((), fitted.lb)
    expected, _ = accumulator_score(at30.extras["confidence"], fitted.tau, 2.0, fitted.lb,
                                    fitted.ub, x, fitted.sas_decay)
    torch.testing.assert_close(at30.frame, expected)
    # a reader that knows its rate gives it to score(); a stream is told it
    assert torch.equal(fitted.score(open_video(v, fps=30.0)).frame, at30.frame)
    stream = fitted.stream(fps=30.0)
    assert torch.equal(torch.cat([stream.update(v[:20]).frame, stream.update(v[20:]).frame]), at30.frame)


@needs_mnv2
def test_sampled_features_equal_those_of_all_frames(fitted):
    # training extracts the flow only where a sampled frame needs it: same values as scoring's
    v, _ = clip(3, T=40)
    idx = torch.tensor([0, 1, 5, 17, 18, 39])
    every = fitted.set_params(chunk_size=16).extract_features(v, keep_images=True)
    some = fitted.extract_features(v, idx, keep_images=True)
    fitted.set_params(chunk_size=64)
    assert torch.equal(some["flow_img"], every["flow_img"][idx])  # the same pairs, exactly
    assert torch.equal(some["rgb_img"], every["rgb_img"][idx])
    for k in ("rgb", "flow"):  # bf16 features may differ in the last bits with the batch
        torch.testing.assert_close(some[k], every[k][idx], rtol=0, atol=2e-2)


def test_fit_needs_labels_with_clear_errors():
    det = vadx.create("two-stream", backbone="mobilenet_v2", weights="random")
    v, y = clip(0)
    with pytest.raises(ValueError, match="supervised: labels must be a list of 1"):
        det.fit([v])
    with pytest.raises(ValueError, match=r"labels\[0\] must hold 0 \(normal\), 1 \(anomaly\) or -1.*\[2\]"):
        det.fit([v, v], [y * 2, y])
    with pytest.raises(ValueError, match="needs at least 2 videos to hold one out"):
        det.fit([v], [y])
    with pytest.raises(ValueError, match=r"validation_videos must be distinct indices of the 2 fit "
                                         r"videos.*got \[0, 1\]"):
        det.set_params(validation_videos=[0, 1]).fit([v, v], [y, y])


def test_cross_parameter_rule():
    with pytest.raises(vadx.ParameterError, match=r"two-stream: ub must be greater than lb = 7.0, got 7.0"):
        vadx.create("two-stream", lb=7, ub=7)


@needs_mnv2
def test_learns_on_synthetic_clips(fitted):
    v, y = clip(11)
    s = fitted.score(v)
    assert roc_auc(s.extras["confidence"], y) > 0.85
    assert roc_auc(s.frame, y) > 0.8
    assert fitted.threshold_ == 0.5 and fitted.history_["phase1"]["epochs"] >= 1
    assert "phase2" in fitted.history_  # fine-tuning of all weights ran (tiny budget)


@needs_mnv2
def test_decision_scores_are_the_confidences_of_the_normal_training_samples(fitted, data):
    # training split: videos 0, 1, 2 (3 validates); sigma of their sampled normal frames, in order
    expected = []
    for v, y in data[:3]:
        idx = fitted.sample(y)
        idx = idx[y[idx] == 0]
        expected.append(fitted.score(v).extras["confidence"][idx])
    expected = torch.cat(expected)
    assert fitted.decision_scores_.shape == expected.shape
    assert torch.allclose(fitted.decision_scores_, expected, atol=1e-5)
    assert fitted.threshold_ == fitted.alarm_threshold  # the alarm rule, not a quantile of them


def test_fit_features_completes_the_fit():
    det = vadx.create("two-stream", weights="random", validation_videos=[],
                      alarm_threshold=0.4, **{**FAST, "max_epochs": 2})
    feats = []
    for s in range(2):
        v, y = clip(s, T=30)
        idx = det.sample(y)
        f = det.extract_features(v, idx)
        f["target"] = y[idx].float()
        feats.append(f)
    det.fit_features(feats[:1], feats[1:])
    assert det.threshold_ == 0.4 and det.input_shape_ is None
    f, normal = feats[0], feats[0]["target"] == 0
    with torch.no_grad():
        sigma = torch.sigmoid(det.net_.logit(f["rgb"][normal], f["flow"][normal], None))
    assert torch.equal(det.decision_scores_, sigma)
    v, _ = clip(5, T=12)
    assert det.score(v).frame.shape == (12,)


def test_max_pooling_takes_each_channels_strongest_response(tmp_path):
    det = vadx.create("two-stream", weights="random", validation_videos=[], pool="max",
                      **{**FAST, "input_size": 96, "max_epochs": 1, "finetune": False})
    v, y = clip(0, T=30)  # 96 px: 3x3 last feature maps
    det.fit([v], [y])
    small, flow = det._inputs({}, torch.as_tensor(v))
    a, b = det.net_.feature_maps(small, flow)
    rf, ff = det.net_.features(small, flow)
    assert torch.equal(rf, a.amax((2, 3))) and torch.equal(ff, b.amax((2, 3)))
    assert not torch.equal(rf, a.mean((2, 3)))
    # kept with the model: a loaded copy pools the same way (the paper's avg would score otherwise)
    det.save(tmp_path / "m.vadx")
    loaded = vadx.load(tmp_path / "m.vadx")
    assert loaded.pool == "max" and loaded.net_.pool_mode == "max"
    assert torch.equal(loaded.score(v).extras["confidence"], det.score(v).extras["confidence"])
    with pytest.raises(vadx.params.ParameterError, match="pool"):
        vadx.create("two-stream", pool="sum")


@needs_mnv2
def test_phase2_changes_backbones_and_gradcam_maps(fitted):
    from vadx.features import load_backbone

    ref = load_backbone("mobilenet_v2", str(MNV2)).state_dict()
    tuned = fitted.net_.rgb.state_dict()
    assert any(not torch.equal(ref[k], tuned[k]) for k in ref if k.endswith("weight"))
    v, _ = clip(13, T=12)
    fitted.localize = True
    try:
        s = fitted.score(v)
    finally:
        fitted.localize = False
    assert s.maps.shape == (12, 48, 64) and torch.isfinite(s.maps).all() and (s.maps >= 0).all()
    assert torch.allclose(s.maps, s.extras["cam_rgb"] + s.extras["cam_flow"])
    assert torch.allclose(s.frame, fitted.score(v).frame, atol=1e-5)


class Bright(ObjectDetector):
    """Toy object detector: one 'flash' per frame whose brightest pixel is >= threshold."""

    name = "bright"

    def __init__(self, *, threshold=250):
        self.threshold, self.classes = threshold, ["flash"]

    def detect(self, frames):
        hits = [int(int(f.max()) >= self.threshold) for f in frames]
        return [Detections(torch.zeros(h, dtype=torch.long), torch.ones(h), torch.zeros(h, 4)) for h in hits]


@needs_mnv2
def test_bag_of_objects_from_a_plugged_object_detector(monkeypatch):
    # registered as the hook would (the hook itself: tests/test_objects.py)
    monkeypatch.setitem(plugins.object_detectors.__globals__["_object_detectors"], "bright",
                        plugins.ObjectDetectorEntry(Bright, "test", None, None))
    data = [clip(s, T=30) for s in range(3)]
    det = vadx.create("two-stream", weights=str(MNV2), object_detector={"name": "bright", "threshold": 250},
                      validation_videos=[], **{**FAST, "max_epochs": 3, "finetune": False})
    det.fit([v for v, _ in data], [y for _, y in data])
    assert det.n_object_classes_ == 1 and det.in_features_ == 2 * 1280 + 1
    v, y = clip(5, T=30)
    f = det.extract_features(v)
    assert torch.equal(f["bag"][:, 0], (v.amax(dim=(1, 2, 3)) >= 250).float())
    whole = det.score(v)
    stream = det.stream()
    chunks = [stream.update(v[a:b]) for a, b in [(0, 4), (4, 5), (5, 30)]]
    assert torch.allclose(vadx.Scores.cat(chunks).frame, whole.frame, atol=1e-6)

    # at 30 frames/s objects are detected in every 3rd frame (object_fps 10), the bag held
    # between, the same in a training pass, a whole video and a stream cut anywhere
    assert det.object_fps_ == 10.0

    class At30(list):
        fps = 30.0

    f30 = det.extract_features(At30([v[:7], v[7:30]]))
    hits = (v.amax(dim=(1, 2, 3)) >= 250).float()
    assert torch.equal(f30["bag"][:, 0], hits[(torch.arange(30) // 3) * 3])
    sampled = det.extract_features(At30([v[:7], v[7:30]]), torch.tensor([4, 8, 29]))
    assert torch.equal(sampled["bag"][:, 0], hits[[3, 6, 27]])
    whole = det.score(v, fps=30.0)
    stream = det.stream(fps=30.0)
    chunks = [stream.update(v[a:b]) for a, b in [(0, 4), (4, 5), (5, 30)]]
    assert torch.allclose(vadx.Scores.cat(chunks).frame, whole.frame, atol=1e-6)
    assert not torch.allclose(whole.extras["confidence"], det.score(v, fps=10.0).extras["confidence"])

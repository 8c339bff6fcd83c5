"""vadx.metrics and vadx.postprocess, against scikit-learn / SciPy and brute-force definitions."""

import json

import numpy as np
import pytest
import torch
from scipy.interpolate import interp1d
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import brentq
from sklearn import metrics as skm

from vadx import Scores
from vadx.data import Masks
from vadx.metrics import (
    Evaluator,
    auc_eer,
    eer,
    evaluate,
    pixel_frame_scores,
    roc_auc,
    roc_curve,
    video_f1,
)
from vadx.postprocess import PostProcess, minmax, smooth, window_minmax


def literature_eer(labels, scores):
    """The EER formula of the VAD literature, on scikit-learn's ROC."""
    fpr, tpr, _ = skm.roc_curve(labels, scores)
    return brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)


def random_case(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    labels = rng.integers(0, 2, n)
    labels[0], labels[-1] = 0, 1  # both classes
    if seed % 3 == 0:
        scores = rng.integers(0, 5, n).astype(float)  # many ties
    elif seed % 3 == 1:
        scores = rng.normal(size=n) + labels
    else:
        scores = np.round(rng.normal(size=n) + 2 * labels, 1)  # some ties
    return scores, labels


@pytest.mark.parametrize("seed", range(30))
def test_roc_auc_eer_equal_scikit_learn(seed):
    scores, labels = random_case(seed)
    fpr, tpr, thr = roc_curve(scores, labels)
    sk_fpr, sk_tpr, sk_thr = skm.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, rtol=0, atol=1e-15)
    np.testing.assert_allclose(tpr, sk_tpr, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(thr, sk_thr)
    auc, e = auc_eer(scores, labels)
    assert auc == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)
    assert e == pytest.approx(literature_eer(labels, scores), abs=1e-9)
    assert roc_auc(torch.as_tensor(scores), torch.as_tensor(labels)) == auc and eer(scores, labels) == e


def test_auc_eer_edge_cases():
    y = np.array([0, 0, 1, 1])
    assert auc_eer([0.1, 0.2, 0.8, 0.9], y) == (1.0, 0.0)
    assert auc_eer([0.9, 0.8, 0.2, 0.1], y) == (0.0, 1.0)
    assert auc_eer([0.5] * 4, y) == (0.5, 0.5)  # all tied: the diagonal
    # one positive scores like the negatives: ROC (0, .5) -> (1, 1); the EER lies on that segment
    auc, e = auc_eer([0, 0, 0, 1], y)
    assert auc == pytest.approx(0.75) and e == pytest.approx(1 / 3)
    assert e == pytest.approx(literature_eer(y, [0, 0, 0, 1]))


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match=r"labels must contain both classes for a ROC, got only "
                                         r"normal \(0\) in 3 frames"):
        roc_auc([1, 2, 3], [0, 0, 0])
    with pytest.raises(ValueError, match="got only anomalous"):
        eer([1, 2], [1, 1])
    with pytest.raises(ValueError, match="scores must be finite, got nan at frame 1"):
        roc_auc([0.0, np.nan], [0, 1])
    with pytest.raises(ValueError, match=r"labels must be 1-D and as long as the scores \(2\), "
                                         r"got shape \(3,\)"):
        roc_auc([0.0, 1.0], [0, 1, 1])
    with pytest.raises(ValueError, match=r"labels must hold 0 and 1 only, got values \[0, 2\]"):
        roc_auc([0.0, 1.0], [0, 2])
    with pytest.raises(ValueError, match=r"scores must be 1-D frame scores \[T\], got shape \(2, 1\)"):
        roc_auc([[0.0], [1.0]], [0, 1])


def videos():
    """Three videos: two with both classes, one all anomalous (like four of UCSD Ped2's)."""
    rng = np.random.default_rng(7)
    labels = [np.r_[np.zeros(30), np.ones(20)], np.r_[np.ones(10), np.zeros(25)], np.ones(15)]
    scores = [rng.normal(size=len(y)) + 1.5 * y for y in labels]
    return scores, [y.astype(np.uint8) for y in labels]


def test_micro_and_macro_averages():
    scores, labels = videos()
    micro = evaluate(scores, labels, names=["a", "b", "c"])
    all_s, all_y = np.concatenate(scores), np.concatenate(labels)
    assert micro.frame_auc == pytest.approx(skm.roc_auc_score(all_y, all_s), abs=1e-12)
    assert micro.frame_eer == pytest.approx(literature_eer(all_y, all_s), abs=1e-9)
    assert micro.n_frames == 100 and micro.n_videos == 3
    macro = evaluate(scores, labels, average="macro")
    two_class = [skm.roc_auc_score(y, s) for s, y in zip(scores[:2], labels[:2])]
    assert macro.frame_auc == pytest.approx(np.mean(two_class), abs=1e-12)
    assert macro.frame_eer == pytest.approx(np.mean([literature_eer(y, s) for s, y in
                                                      zip(scores[:2], labels[:2])]), abs=1e-9)
    assert [r["auc"] is None for r in macro.per_video] == [False, False, True]  # left out, listed
    assert macro.per_video[2] == {"name": "2", "n_frames": 15, "n_anomalous": 15, "auc": None, "eer": None}
    with pytest.raises(ValueError, match="macro average: no video has both normal and anomalous frames"):
        evaluate(scores[2:], labels[2:], average="macro")
    with pytest.raises(ValueError, match="average must be one of"):
        evaluate(scores, labels, average="weighted")


def brute_force_pixel_roc(maps, masks, fraction=0.4):
    """The UCSD rule by definition: sweep every threshold, count TP/FP frames."""
    gt_frames = masks.reshape(len(masks), -1).any(1)
    points = []
    for thr in np.r_[np.inf, np.unique(maps)[::-1]]:
        detected = maps >= thr
        tp = sum(detected[t][masks[t]].mean() >= fraction for t in np.flatnonzero(gt_frames))
        fp = sum(detected[t].any() for t in np.flatnonzero(~gt_frames))
        points.append((fp / (~gt_frames).sum(), tp / gt_frames.sum()))
    fpr, tpr = np.array(points).T
    return fpr, tpr


@pytest.mark.parametrize("seed", range(5))
def test_pixel_level_40_percent_rule_equals_its_definition(seed):
    rng = np.random.default_rng(seed)
    T, H, W = 16, 6, 7
    masks = np.zeros((T, H, W), bool)
    for t in range(0, T, 2):  # every other frame has an anomaly of random size
        y, x = rng.integers(0, 3, 2)
        masks[t, y:y + rng.integers(1, 4), x:x + rng.integers(1, 5)] = True
    maps = np.round(rng.random((T, H, W)) + 0.6 * masks, 1)  # coarse values: many ties
    fpr, tpr = brute_force_pixel_roc(maps, masks)
    frame = pixel_frame_scores(maps, masks)
    ours_fpr, ours_tpr, _ = roc_curve(frame, masks.reshape(T, -1).any(1).astype(int))
    area = lambda f, t: np.sum(np.diff(f) * (t[1:] + t[:-1]) / 2)  # noqa: E731 (trapezoids)
    assert area(fpr, tpr) == pytest.approx(area(ours_fpr, ours_tpr), abs=1e-12)
    assert set(zip(ours_fpr.round(12), ours_tpr.round(12))) <= set(zip(fpr.round(12), tpr.round(12)))


def test_pixel_rule_boundary_is_inclusive_at_40_percent():
    maps = np.zeros((2, 1, 6))
    masks = np.zeros((2, 1, 6), bool)
    maps[0, 0, :5], masks[0, 0, :5] = [5, 4, 3, 2, 1], True  # 5 GT pixels: 2 must be detected
    maps[1, 0] = [0, 0, 0, 0, 0, 7]  # a normal frame with one hot pixel
    assert pixel_frame_scores(maps, masks).tolist() == [4.0, 7.0]
    with pytest.raises(ValueError, match=r"maps and masks must both be \[T, H, W\]"):
        pixel_frame_scores(maps, masks[:1])


def test_evaluator_pixel_level_with_lazy_masks_and_json():
    rng = np.random.default_rng(1)
    T, H, W = 40, 8, 10
    masks = np.zeros((T, H, W), bool)
    masks[10:30, 2:5, 3:7] = True
    labels = masks.reshape(T, -1).any(1).astype(np.uint8)
    maps = rng.random((T, H, W)) + masks
    scores = Scores(torch.as_tensor(maps.max(axis=(1, 2)), dtype=torch.float32),
                    torch.as_tensor(maps, dtype=torch.float32))
    ev = Evaluator(postprocess=PostProcess(normalize="minmax", sigma=2.0), threshold=0.5)
    ev.add(scores, labels, Masks(masks, chunk_size=7), name="v1")  # chunked, like files
    result = ev.result()
    frame = pixel_frame_scores(scores.maps.numpy(), masks)
    assert result.pixel_auc == pytest.approx(skm.roc_auc_score(labels, frame), abs=1e-12)
    assert result.pixel_eer == pytest.approx(literature_eer(labels, frame), abs=1e-9)
    assert evaluate([scores], [labels], [masks]).pixel_auc == result.pixel_auc  # array masks
    assert evaluate([scores.frame], [labels]).pixel_auc is None  # no maps
    d = json.loads(result.to_json())
    assert {"frame_auc", "frame_eer", "pixel_auc", "pixel_eer", "n_frames", "options"} <= d.keys()
    assert d["options"] == {"average": "micro", "normalize": "minmax", "sigma": 2.0, "window": None,
                            "threshold": 0.5, "pixel_fraction": 0.4, "pixel_videos": 1}
    assert d["per_video"][0]["alarm"] is True and d["video_f1"] == 1.0
    with pytest.raises(ValueError, match="video v2: labels must be 1-D and as long as the scores"):
        ev.add(scores, labels[:-1], name="v2")


def test_video_f1_equals_scikit_learn():
    rng = np.random.default_rng(3)
    scores = [rng.random(20) + 0.3 * k for k in range(8)]
    truth = [int(k % 3 != 0) for k in range(8)]
    for thr in (0.9, 1.5, 2.5, 5.0):
        pred = [int((s > thr).any()) for s in scores]
        expect = skm.f1_score(truth, pred, zero_division=0)
        assert video_f1(scores, [[t] for t in truth], thr) == pytest.approx(expect)
    # frame labels stand for the video label; a threshold equal to the maximum is no alarm
    assert video_f1([np.array([0.0, 1.0])], [np.array([0, 1])], 1.0) == 0.0


def test_postprocess_functions():
    x = np.array([3.0, 1.0, 2.0, 5.0, 4.0])
    np.testing.assert_allclose(minmax(x), [0.5, 0, 0.25, 1, 0.75])
    assert minmax(np.full(3, 2.0)).tolist() == [0, 0, 0]
    np.testing.assert_allclose(smooth(x, 1.5), gaussian_filter1d(x, 1.5))
    assert smooth(x, 0).tolist() == x.tolist()
    w = window_minmax(x, 3)  # causal: windows [3], [3,1], [3,1,2], [1,2,5], [2,5,4]
    np.testing.assert_allclose(w, [0, 0, 0.5, 1, 2 / 3])
    p = PostProcess(normalize="minmax", sigma=1.0)
    y = p(x)
    assert y.min() == 0 and y.max() == 1  # smoothing first, then normalisation
    np.testing.assert_allclose(y, minmax(gaussian_filter1d(x, 1.0)))
    assert PostProcess(normalize="window", window=3)(x).tolist() == w.tolist()


@pytest.mark.parametrize("kwargs, match", [
    (dict(normalize="zscore"), "normalize must be one of"),
    (dict(sigma=-1), "sigma must be a number >= 0, got -1"),
    (dict(normalize="window"), "window must be an int >= 1 with normalize='window', got None"),
    (dict(window=5), "window is used only with normalize='window'"),
])
def test_postprocess_options_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PostProcess(**kwargs)

"""vadx.data.synthetic: determinism, ground truth, and that each anomaly is what it claims."""

import numpy as np
import pytest
import torch

import vadx.data
from vadx.data.synthetic import FAST_SPEED, KINDS, LANES, WALK_SPEED, make_dataset


@pytest.fixture(scope="module")
def scene():
    return make_dataset(seed=0)


def centroids(masks):
    """Per frame (only frames where the object is wholly inside): the mask's centre column."""
    t_idx = [t for t in range(len(masks)) if masks[t].any() and not masks[t][:, [0, -1]].any()]
    return np.array(t_idx), np.array([np.flatnonzero(masks[t].any(0)).mean() for t in t_idx])


def test_defaults_shapes_and_ground_truth(scene):
    assert scene.name == "synthetic" and scene.root is None and scene.has_masks
    assert len(scene.train) == 4 and len(scene.test) == 6
    assert [v.meta["kind"] for v in scene.test] == list(KINDS) * 2
    for v in scene.train:
        assert v.labels is None and v.masks is None and v.meta == {"kind": "normal"}
        assert v.read().shape == (100, 1, 120, 160)
    for v in scene.test:
        frames, masks = v.read(), v.masks.read()
        assert frames.dtype == torch.uint8 and frames.shape == (100, 1, 120, 160)
        assert masks.shape == (100, 120, 160) and masks.dtype == bool
        assert np.array_equal(v.labels, masks.reshape(100, -1).any(1))  # label = object in frame
        onset = v.meta["onset"]
        assert 10 <= onset <= 33 and v.labels[:onset].sum() == 0
        assert 0 < v.labels.sum() < 100  # every test clip has both classes


def test_deterministic_by_seed():
    a, b = make_dataset(seed=5, n_train=2, n_test=3), make_dataset(seed=5, n_train=2, n_test=3)
    for va, vb in zip(a.train + a.test, b.train + b.test):
        assert torch.equal(va.read(), vb.read())
    for va, vb in zip(a.test, b.test):
        assert np.array_equal(va.labels, vb.labels) and np.array_equal(va.masks.read(), vb.masks.read())
        assert va.meta == vb.meta
    c = make_dataset(seed=6, n_train=2, n_test=3)
    assert not torch.equal(a.train[0].read(), c.train[0].read())
    assert not torch.equal(a.train[0].read(), a.train[1].read())
    more = make_dataset(seed=5, n_train=2, n_test=5)  # each clip has its own random stream
    assert torch.equal(more.train[1].read(), a.train[1].read())
    assert torch.equal(more.test[2].read(), a.test[2].read())


def test_appearance_anomaly_is_a_larger_unseen_shape(scene):
    for v in scene.test:
        if v.meta["kind"] != "appearance":
            continue
        masks, frames = v.masks.read(), v.read()[:, 0].numpy()
        t = int(np.argmax(masks.reshape(100, -1).sum(1)))
        assert masks[t].sum() == 16 * 26  # walkers cover at most 14 x 7 = 98 pixels
        assert np.median(frames[t][masks[t]]) > 150  # bright, unlike the dark walkers (<= 115)


@pytest.mark.parametrize("kind, speeds, against_lane", [
    ("speed", FAST_SPEED, False), ("direction", WALK_SPEED, True)])
def test_motion_anomalies_move_as_claimed(scene, kind, speeds, against_lane):
    clips = [v for v in scene.test if v.meta["kind"] == kind]
    assert clips
    for v in clips:
        t, x = centroids(v.masks.read())
        assert len(t) >= 5
        velocity = (x[-1] - x[0]) / (t[-1] - t[0])  # px/frame, signed
        lane_direction = LANES[v.meta["lane"]][1]
        assert np.sign(velocity) == (-lane_direction if against_lane else lane_direction)
        assert speeds[0] - 0.2 <= abs(velocity) <= speeds[1] + 0.2
        assert abs(velocity) == pytest.approx(v.meta["speed"], abs=0.2)


def test_load_synthetic_options_and_errors():
    ds = vadx.data.load("synthetic", seed=2, n_train=1, n_test=2, n_frames=30, height=64, width=96,
                        kinds=("speed",))
    assert ds.options["seed"] == 2 and ds.options["kinds"] == ["speed"]
    assert ds.test[1].read().shape == (30, 1, 64, 96) and ds.test[1].meta["kind"] == "speed"
    with pytest.raises(ValueError, match="n_frames must be an int >= 20, got 5"):
        make_dataset(n_frames=5)
    with pytest.raises(ValueError, match=r"kinds must be a non-empty selection of .*got \('fire',\)"):
        make_dataset(kinds=("fire",))

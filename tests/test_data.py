"""vadx.data: the real UCSD Ped2 data in both layouts (../shared/data), generated fixtures for the
other layouts, label file formats and layout errors."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.io import savemat

import vadx.data
from vadx.data import DatasetError, Masks, label_intervals, load, read_label_file
from vadx.data.labels import parse_m_file
from vadx.detector import VideoChunks
from vadx.io import write_frames

DATA = Path(__file__).parents[2] / "shared" / "data"
PED2 = DATA / "ucsd_ped2"
SAMPLE = DATA / "ucsd_ped2_official_sample"
# UCSDped2.m, 1-based inclusive: the official Ped2 frame ground truth
PED2_GT = [(61, 180), (95, 180), (1, 146), (31, 180), (1, 129), (1, 159), (46, 180), (1, 180),
           (1, 120), (1, 150), (1, 180), (88, 180)]
PED2_LENGTHS = [180, 180, 150, 180, 150, 180, 180, 180, 120, 150, 180, 180]


def avi(path, frames, fps=10):
    """Write uint8 [T, H, W, 3] RGB frames with cv2.VideoWriter (Motion-JPEG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(np.ascontiguousarray(f[:, :, ::-1]))
    writer.release()
    return path


def clip(T=8, H=24, W=32, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (T, H, W, 3), dtype=np.uint8)


# ----------------------------------------------------------------- UCSD Ped2, real data
def test_ped2_frames_layout_counts_and_labels():
    ds = load("ucsd-ped2", PED2)
    assert ds.layout == "frames" and ds.name == "ucsd-ped2"
    assert [v.name for v in ds.test] == [f"{i:02d}" for i in range(1, 13)]
    assert len(ds.train) == 16 and sum(len(v) for v in ds.train) == 2550
    assert [len(v) for v in ds.test] == PED2_LENGTHS and sum(PED2_LENGTHS) == 2010
    # 1648 anomalous frames: the sum over UCSDped2.m's ranges (the shared data README says 1636,
    # which the ranges it quotes do not add up to) and equal to the frames with non-empty masks
    assert sum(int(v.labels.sum()) for v in ds.test) == 1648
    for v, (a, b) in zip(ds.test, PED2_GT):
        assert v.labels.dtype == np.uint8 and label_intervals(v.labels) == [(a - 1, b)]
    assert ds.has_masks and all(v.masks is not None and len(v.masks) == len(v) for v in ds.test)
    assert ds.train[0].labels is None


def test_ped2_frames_layout_reads_grey_frames_and_masks_lazily():
    ds = load("ucsd-ped2", PED2)
    video = ds.test[1]
    frames = video.read(0, 2)
    assert frames.shape == (2, 1, 240, 360) and frames.dtype == torch.uint8  # UCSD: grey by default
    masks = video.masks.read(93, 96)  # video 02: frames 95.. (1-based) are anomalous
    assert masks.shape == (3, 240, 360) and masks.dtype == bool
    assert masks.reshape(3, -1).any(1).tolist() == [False, True, True]
    colour = load("ucsd-ped2", PED2, grayscale=None).test[0].read(0, 1)
    assert colour.shape == (1, 3, 240, 360)  # the JPEGs store three equal channels
    assert torch.equal(colour[0, 0], colour[0, 2])
    small = load("ucsd-ped2", PED2, size=(120, 180)).test[1]
    assert small.read(0, 1).shape == (1, 1, 120, 180) and small.masks.read(94, 95).shape == (1, 120, 180)


def test_ped2_masks_agree_with_labels_on_a_video():
    video = load("ucsd-ped2", PED2).test[1]
    assert np.array_equal(video.masks.frame_labels(), video.labels)


def test_ped2_official_sample_layout_without_train_test_folders():
    ds = load("ucsd-ped2", SAMPLE)
    assert ds.layout == "official" and ds.options["labels"] == "masks"
    assert [v.name for v in ds.train] == ["Train001"] and [v.name for v in ds.test] == ["Test001"]
    test = ds.test[0]
    assert len(test) == 40 and len(ds.train[0]) == 40
    assert test.labels.tolist() == [0] * 40  # Test001's anomaly starts at frame 61
    frames = test.read()
    assert frames.shape == (40, 1, 240, 360)
    tif = cv2.imread(str(SAMPLE / "UCSDped2" / "Test001" / "040.tif"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(frames[39, 0].numpy(), tif)
    # the frames-folder copy is the same video through JPEG: ~0.7 grey levels of error
    jpeg = load("ucsd-ped2", PED2).test[0].read(0, 40)
    err = (frames.int() - jpeg.int()).abs().float()
    assert err.mean() < 1.0 and err.max() <= 12
    masks = test.masks.read()
    png = load("ucsd-ped2", PED2).test[0].masks.read(0, 40)
    assert masks.shape == (40, 240, 360) and np.array_equal(masks, png)


@pytest.fixture
def official_ped2(tmp_path):
    """The sample in the full official layout: UCSDped2/Train/Train001, UCSDped2/Test/Test001(_gt)."""
    root = tmp_path / "UCSD_Anomaly_Dataset.v1p2"
    for sub, name in (("Train", "Train001"), ("Test", "Test001"), ("Test", "Test001_gt")):
        (root / "UCSDped2" / sub).mkdir(parents=True, exist_ok=True)
        os.symlink(SAMPLE / "UCSDped2" / name, root / "UCSDped2" / sub / name)
    return root


def test_ped2_official_layout_with_m_file(official_ped2):
    m = official_ped2 / "UCSDped2" / "Test" / "UCSDped2.m"
    m.write_text("TestVideoFile = {};\n% the first 40 frames only\n"
                 "TestVideoFile{end+1}.gt_frame = [5:10, 20, 31:2:35];\n")
    for root in (official_ped2, official_ped2 / "UCSDped2"):
        ds = load("ucsd-ped2", root)
        assert ds.layout == "official" and ds.options["labels"] == str(m)
        assert np.flatnonzero(ds.test[0].labels).tolist() == [4, 5, 6, 7, 8, 9, 19, 30, 32, 34]
    m.write_text("TestVideoFile{end+1}.gt_frame = [61:180];\n")
    with pytest.raises(ValueError, match=r"UCSDped2\.m entry 1 \(video Test001\) must be frame "
                                         r"numbers in 1\.\.40 for a video of 40 frames, got 61\.\.180"):
        load("ucsd-ped2", official_ped2)


def test_wrong_root_says_what_was_expected_and_found(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "readme.txt").write_text("")
    with pytest.raises(DatasetError) as e:
        load("ucsd-ped2", tmp_path)
    msg = str(e.value)
    assert f"{tmp_path} does not hold the ucsd-ped2 dataset" in msg
    assert "UCSDped2/Train/Train001/001.tif" in msg and "training/frames/<video>" in msg
    assert "Found in" in msg and "readme.txt, videos/" in msg
    with pytest.raises(DatasetError, match="does not hold the ucsd-ped1 dataset"):
        load("ucsd-ped1", SAMPLE)  # a Ped2 folder is not found as Ped1's UCSDped1/


def test_load_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="name must be one of ucsd-ped1, .*synthetic; got 'ped2'"):
        load("ped2", tmp_path)
    with pytest.raises(ValueError, match="needs root"):
        load("avenue")
    with pytest.raises(FileNotFoundError, match="dataset root not found"):
        load("frames", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="root must be None"):
        load("synthetic", tmp_path)
    with pytest.raises(TypeError, match="labelz"):
        load("frames", tmp_path, labelz="x.npy")


def test_videos_are_reiterable_chunk_sources():
    video = load("ucsd-ped2", SAMPLE, chunk_size=16).test[0]
    chunks = VideoChunks(video, 64, torch.device("cpu"))
    assert [c.shape[0] for c in chunks] == [16, 16, 8] == [c.shape[0] for c in chunks]


# ----------------------------------------------------------------- frames-folder layout
@pytest.fixture
def frames_root(tmp_path):
    """A frames-folder dataset written from the synthetic generator (PNG: lossless)."""
    ds = vadx.data.make_dataset(seed=3, n_train=2, n_test=2, n_frames=24, height=60, width=80)
    root = tmp_path / "frames_ds"
    for v in ds.train:
        write_frames(root / "training" / "frames" / v.name, v)
    for v in ds.test:
        write_frames(root / "testing" / "frames" / v.name, v)
        write_frames(root / "testing" / "masks" / v.name,
                     torch.from_numpy(v.masks.read()[:, None].astype(np.uint8) * 255))
    return root, ds


def test_frames_layout_roundtrip_npy_labels(frames_root):
    root, ds = frames_root
    np.save(root / "labels.npy", np.concatenate([v.labels for v in ds.test]))
    loaded = load("frames", root)
    assert loaded.layout == "frames" and loaded.options["labels"] == str(root / "labels.npy")
    assert [v.name for v in loaded.train] == [v.name for v in ds.train]
    for a, b in zip(loaded.test, ds.test):
        assert torch.equal(a.read(), b.read())
        assert np.array_equal(a.labels, b.labels) and np.array_equal(a.masks.read(), b.masks.read())


def test_frames_layout_mat_and_m_labels(frames_root):
    root, ds = frames_root
    ranges = [np.array(label_intervals(v.labels)).T + [[1], [0]] for v in ds.test]  # 1-based inclusive
    cell = np.empty((1, len(ranges)), dtype=object)
    for i, r in enumerate(ranges):
        cell[0, i] = r.astype(float)
    savemat(root / "testing" / "gt.mat", {"gt": cell})
    loaded = load("frames", root)
    assert all(np.array_equal(a.labels, b.labels) for a, b in zip(loaded.test, ds.test))
    (root / "ped.m").write_text("".join(f"TestVideoFile{{end+1}}.gt_frame = [{r[0, 0]}:{r[1, 0]}];\n"
                                        for r in ranges))
    with pytest.raises(DatasetError, match="several label files found .*labels=<path>"):
        load("frames", root)
    loaded = load("frames", root, labels="ped.m")
    assert all(np.array_equal(a.labels, b.labels) for a, b in zip(loaded.test, ds.test))


def test_frames_layout_errors(frames_root):
    root, ds = frames_root
    with pytest.raises(DatasetError, match="no frame-label file found"):
        load("frames", root)
    np.save(root / "labels.npy", np.zeros(47))
    with pytest.raises(ValueError, match="holds 47 labels; the 2 test videos have 48 frames"):
        load("frames", root)
    np.save(root / "labels.npy", np.full(48, 2))
    with pytest.raises(ValueError, match=r"must hold 0 \(normal\) and 1 \(anomalous\) only, "
                                         r"got values \[2\]"):
        load("frames", root)
    os.remove(root / "testing" / "masks" / ds.test[0].name / "005.png")
    np.save(root / "labels.npy", np.zeros(48))
    with pytest.raises(DatasetError, match="has 23 masks for the 24 frames"):
        load("frames", root)


# ----------------------------------------------------------------- label files
def test_label_file_formats(tmp_path):
    m = tmp_path / "gt.m"
    m.write_text("% comment [1:3]\nTestVideoFile{end+1}.gt_frame = [2:3 5];  % trailing\n"
                 "TestVideoFile{end+1}.gt_frame = [];\nTestVideoFile{end+1}.gt_frame = [6:-2:2];\n")
    assert [e.tolist() for e in parse_m_file(m)] == [[2, 3, 5], [], [6, 4, 2]]
    labels = read_label_file(m, [6, 4, 6])
    assert [lab.tolist() for lab in labels] == [[0, 1, 1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 1, 0, 1]]
    with pytest.raises(ValueError, match=r"gt\.m has 3 entries for 2 test videos"):
        read_label_file(m, [6, 4])
    bad = tmp_path / "bad.m"
    bad.write_text("x.gt_frame = [1:two];")
    with pytest.raises(ValueError, match="entry 1 has '1:two'; expected a:b"):
        parse_m_file(bad)
    # one video's plain 2 x K matrix (not a cell) is one video
    savemat(tmp_path / "one.mat", {"gt": np.array([[2, 6], [3, 6]])})
    assert read_label_file(tmp_path / "one.mat", [6])[0].tolist() == [0, 1, 1, 0, 0, 1]
    savemat(tmp_path / "keys.mat", {"labels": np.zeros(3)})
    with pytest.raises(ValueError, match=r"expected a variable 'gt'.*found \['labels'\]"):
        read_label_file(tmp_path / "keys.mat", [3])
    np.save(tmp_path / "obj.npy", np.array([np.zeros(2), np.zeros(3)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="object arrays need pickle"):
        read_label_file(tmp_path / "obj.npy", [2, 3])


def test_label_intervals():
    assert label_intervals([0, 1, 1, 0, 1]) == [(1, 3), (4, 5)]
    assert label_intervals(np.ones(3)) == [(0, 3)] and label_intervals([]) == []


# ----------------------------------------------------------------- Avenue
def _vol_label(masks):
    cell = np.empty((1, len(masks)), dtype=object)
    for i, m in enumerate(masks):
        cell[0, i] = m.astype(float)  # the release stores double 0/1 matrices
    return {"volLabel": cell}


@pytest.mark.parametrize("label_dir", ["testing_label_mask", "ground_truth_demo/testing_label_mask"])
def test_avenue_official_layout(tmp_path, label_dir):
    for i in (1, 2):
        avi(tmp_path / "training_videos" / f"{i:02d}.avi", clip(seed=i))
        avi(tmp_path / "testing_videos" / f"{i:02d}.avi", clip(seed=10 + i))
    masks = np.zeros((8, 24, 32), bool)
    masks[3:6, 5:9, 10:20] = True
    (tmp_path / label_dir).mkdir(parents=True)
    savemat(tmp_path / label_dir / "1_label.mat", _vol_label(masks))
    savemat(tmp_path / label_dir / "2_label.mat", _vol_label(np.zeros((8, 24, 32), bool)))
    ds = load("avenue", tmp_path)
    assert ds.layout == "official" and [v.name for v in ds.test] == ["01", "02"] and len(ds.train) == 2
    assert ds.test[0].labels.tolist() == [0, 0, 0, 1, 1, 1, 0, 0]
    assert ds.test[1].labels.sum() == 0
    assert np.array_equal(ds.test[0].masks.read(), masks)
    assert ds.test[0].read().shape == (8, 3, 24, 32) and ds.test[0].fps == 10
    os.remove(tmp_path / label_dir / "2_label.mat")
    with pytest.raises(DatasetError, match=r"no 2_label\.mat for the test video .*02\.avi"):
        load("avenue", tmp_path)


def test_avenue_label_count_must_match_video(tmp_path):
    avi(tmp_path / "training_videos" / "01.avi", clip())
    avi(tmp_path / "testing_videos" / "01.avi", clip())
    (tmp_path / "testing_label_mask").mkdir()
    savemat(tmp_path / "testing_label_mask" / "1_label.mat", _vol_label(np.zeros((7, 24, 32), bool)))
    video = load("avenue", tmp_path).test[0]
    with pytest.raises(ValueError, match="labels of video 01 has 7 labels for a video of 8 frames"):
        video.labels


def test_avenue_wrong_root(tmp_path):
    (tmp_path / "training_videos").mkdir()
    with pytest.raises(DatasetError, match=r"(?s)does not hold the avenue dataset.*testing_videos/01\.avi"
                                           r".*Found in .*: training_videos/$"):
        load("avenue", tmp_path)


# ----------------------------------------------------------------- ShanghaiTech
def test_shanghaitech_layout(tmp_path):
    avi(tmp_path / "training" / "videos" / "01_001.avi", clip(seed=1))
    frames = clip(T=6, seed=2)
    write_frames(tmp_path / "testing" / "frames" / "01_0014", torch.from_numpy(frames).permute(0, 3, 1, 2),
                 ext=".jpg")
    (tmp_path / "testing" / "test_frame_mask").mkdir(parents=True)
    np.save(tmp_path / "testing" / "test_frame_mask" / "01_0014.npy", np.array([0, 0, 1, 1, 0, 0]))
    pixel = np.zeros((6, 24, 32), np.uint8)
    pixel[2:4, 1:5, 1:5] = 1
    (tmp_path / "testing" / "test_pixel_mask").mkdir()
    np.save(tmp_path / "testing" / "test_pixel_mask" / "01_0014.npy", pixel)
    ds = load("shanghaitech", tmp_path)
    assert [v.name for v in ds.train] == ["01_001"] and len(ds.train[0]) == 8
    video = ds.test[0]
    assert video.name == "01_0014" and video.labels.tolist() == [0, 0, 1, 1, 0, 0]
    assert np.array_equal(video.masks.read(), pixel.astype(bool))
    assert video.read().shape == (6, 3, 24, 32)
    os.remove(tmp_path / "testing" / "test_frame_mask" / "01_0014.npy")
    with pytest.raises(DatasetError, match=r"no 01_0014\.npy for the test video"):
        load("shanghaitech", tmp_path)


# ----------------------------------------------------------------- UCF-Crime
@pytest.fixture
def ucf_root(tmp_path):
    avi(tmp_path / "Anomaly-Videos" / "Abuse" / "Abuse028_x264.avi", clip(T=10, seed=1))
    avi(tmp_path / "Anomaly-Videos" / "Abuse" / "Abuse001_x264.avi", clip(T=6, seed=2))
    avi(tmp_path / "Normal" / "Normal_Videos_003_x264.avi", clip(T=5, seed=3))
    avi(tmp_path / "Normal" / "Normal_Videos001_x264.avi", clip(T=4, seed=4))
    splits = tmp_path / "Anomaly_Detection_splits"
    splits.mkdir()
    (splits / "Temporal_Anomaly_Annotation_for_Testing_Videos.txt").write_text(
        "Abuse028_x264.avi  Abuse  2  4  7  9  \nNormal_Videos_003_x264.avi  Normal  -1  -1  -1  -1\n")
    (splits / "Anomaly_Train.txt").write_text(
        "Abuse/Abuse001_x264.avi\nTraining_Normal_Videos_Anomaly/Normal_Videos001_x264.avi\n")
    return tmp_path


def test_ucf_crime_layout(ucf_root):
    ds = load("ucf-crime", ucf_root)
    assert [v.name for v in ds.test] == ["Abuse028_x264", "Normal_Videos_003_x264"]
    abuse, normal = ds.test
    assert abuse.labels.tolist() == [0, 0, 1, 1, 0, 0, 0, 1, 1, 0]  # gt[start:end] = 1
    assert normal.labels.tolist() == [0] * 5
    assert (abuse.video_label, normal.video_label) == (1, 0) and abuse.meta["class"] == "Abuse"
    assert [v.name for v in ds.train] == ["Normal_Videos001_x264"] and ds.train[0].video_label == 0
    both = load("ucf-crime", ucf_root, train="all")
    assert [(v.name, v.video_label, v.labels) for v in both.train] == [
        ("Abuse001_x264", 1, None), ("Normal_Videos001_x264", 0, None)]


def test_ucf_crime_errors(ucf_root, tmp_path_factory):
    with pytest.raises(ValueError, match="train must be 'normal' or 'all', got 'weak'"):
        load("ucf-crime", ucf_root, train="weak")
    os.remove(ucf_root / "Normal" / "Normal_Videos_003_x264.avi")
    with pytest.raises(DatasetError, match=r"lists Normal_Videos_003_x264\.avi, which is not under"):
        load("ucf-crime", ucf_root)
    with pytest.raises(DatasetError, match=r"no Temporal_Anomaly_Annotation\*\.txt under the root"):
        load("ucf-crime", tmp_path_factory.mktemp("empty"))


def test_masks_from_a_loader_are_checked():
    masks = Masks(lambda: np.zeros((3, 4, 4)), n_frames=2)
    with pytest.raises(DatasetError, match=r"mask loader returned shape \(3, 4, 4\); expected \[2, H, W\]"):
        masks.read()

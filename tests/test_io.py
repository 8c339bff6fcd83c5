"""vadx.io: readers (files, folders, arrays) and writers (videos, frames, overlays, plots)."""

import re
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vadx import Scores
from vadx.detector import VideoChunks
from vadx.io import (
    ArrayReader,
    FileReader,
    FolderReader,
    VideoReadError,
    natural_key,
    open_video,
    plot_scores,
    read_video,
    write_frames,
    write_overlay,
    write_video,
)

OFFICIAL = Path(__file__).parents[2] / "shared" / "data" / "ucsd_ped2_official_sample" / "UCSDped2"


def moving_square(T=20, H=24, W=32, C=3):
    """uint8 [T, C, H, W]: a flat background (grey 60) with a 6x6 square (200) moving right."""
    v = np.full((T, C, H, W), 60, np.uint8)
    for t in range(T):
        v[t, :, 8:14, t:t + 6] = 200
    return v


def test_natural_sort_orders_numbers_by_value():
    names = ["10.png", "2.png", "1.png", "frame_100.png", "frame_20.png"]
    assert sorted(names, key=natural_key) == ["1.png", "2.png", "10.png", "frame_20.png", "frame_100.png"]


def test_folder_reader_natural_order_chunks_and_reiteration(tmp_path):
    for i in range(12):  # unpadded names: lexical order would put 10, 11 after 1
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((6, 8), 10 * i, np.uint8))
    (tmp_path / ".hidden.png").write_bytes(b"not an image")  # skipped
    (tmp_path / "notes.txt").write_text("skipped")
    reader = open_video(tmp_path, chunk_size=5)
    assert isinstance(reader, FolderReader) and len(reader) == 12
    chunks = list(reader)
    assert [c.shape[0] for c in chunks] == [5, 5, 2]
    frames = torch.cat(chunks)
    assert frames.dtype == torch.uint8 and frames.shape == (12, 1, 6, 8)  # grey files stay C = 1
    assert frames[:, 0, 0, 0].tolist() == [10 * i for i in range(12)]
    assert torch.equal(torch.cat(list(reader)), frames)  # a second pass re-reads the same frames
    assert torch.equal(reader.read(3, 7), frames[3:7])
    assert reader.shape == (1, 6, 8)


def test_array_reader_options():
    v = moving_square(T=7)
    reader = ArrayReader(v, chunk_size=3)
    assert [tuple(c.shape) for c in reader] == [(3, 3, 24, 32), (3, 3, 24, 32), (1, 3, 24, 32)]
    grey = read_video(v, grayscale=True)
    expect = cv2.cvtColor(v[4].transpose(1, 2, 0), cv2.COLOR_RGB2GRAY)
    assert grey.shape == (7, 1, 24, 32) and np.array_equal(grey[4, 0].numpy(), expect)
    small = read_video(v, size=(12, 16))
    assert small.shape == (7, 3, 12, 16)
    assert small[0, 0, 5, 2].item() == 200 and small[0, 0, 0, 0].item() == 60  # area average of 2x2
    rgb = read_video(v[:, :1], grayscale=False)
    assert rgb.shape == (7, 3, 24, 32) and torch.equal(rgb[:, 0], rgb[:, 2])
    assert read_video(v[:, 0]).shape == (7, 1, 24, 32)  # [T, H, W] is read as grey


@pytest.mark.parametrize("bad, match", [
    (dict(chunk_size=0), "chunk_size must be an int >= 1, got 0"),
    (dict(size=(10,)), r"size must be None or a \(height, width\) pair of positive ints, got \(10,\)"),
    (dict(grayscale="yes"), "grayscale must be None"),
    (dict(fps=-1), r"fps must be None or a finite number > 0 \(frames per second\), got -1"),
    (dict(fps=float("inf")), r"fps must be None or a finite number > 0 .*got inf"),
])
def test_reader_options_are_checked(bad, match):
    with pytest.raises(ValueError, match=match):
        open_video(moving_square(T=2), **bad)


def test_array_reader_rejects_wrong_input():
    with pytest.raises(TypeError, match="uint8"):
        ArrayReader(np.zeros((2, 1, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"C = 1 or 3.*shape \(2, 2, 4, 4\)"):
        ArrayReader(np.zeros((2, 2, 4, 4), np.uint8))
    with pytest.raises(TypeError, match="source must be a video file"):
        open_video(42)


def test_video_file_roundtrip_fps_and_reiteration(tmp_path):
    v = moving_square()
    path = write_video(tmp_path / "clip.avi", v, fps=12.5)
    reader = open_video(path, chunk_size=8)
    assert isinstance(reader, FileReader)
    assert len(reader) == 20 and reader.fps == 12.5 and reader.shape == (3, 24, 32)
    frames = torch.cat(list(reader))
    assert frames.shape == (20, 3, 24, 32)
    err = np.abs(frames.numpy().astype(int) - v.astype(int))
    assert err.mean() < 3  # Motion-JPEG is lossy
    assert torch.equal(torch.cat(list(reader)), frames)  # iterating again re-opens the file
    assert torch.equal(reader.read(5, 9), frames[5:9])
    grey = open_video(path, grayscale=True, size=(12, 16)).read()
    assert grey.shape == (20, 1, 12, 16)
    mp4 = open_video(write_video(tmp_path / "clip.mp4", v, fps=10))
    assert len(mp4) == 20 and mp4.fps == 10


def test_detector_chunking_accepts_a_reader_twice(tmp_path):
    reader = open_video(write_video(tmp_path / "clip.avi", moving_square()), chunk_size=6)
    chunks = VideoChunks(reader, 4, torch.device("cpu"))
    first = [c.shape[0] for c in chunks]
    assert first == [4, 2, 4, 2, 4, 2, 2] and [c.shape[0] for c in chunks] == first


def test_bad_files_raise_errors_naming_the_file(tmp_path):
    missing = tmp_path / "missing.avi"
    with pytest.raises(FileNotFoundError, match="missing.avi"):
        open_video(missing)
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    with pytest.raises(VideoReadError, match=r"empty\.avi: empty file"):
        open_video(empty)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 50)
    with pytest.raises(VideoReadError, match=r"garbage\.mp4: OpenCV cannot open"):
        open_video(garbage)
    empty_dir = tmp_path / "frames"
    empty_dir.mkdir()
    with pytest.raises(VideoReadError, match="frames: frame folder has no image files"):
        open_video(empty_dir)
    cv2.imwrite(str(empty_dir / "000.png"), np.zeros((4, 4), np.uint8))
    (empty_dir / "001.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(VideoReadError, match=r"001\.png: cannot decode.*strict=True refuses it"):
        open_video(empty_dir, strict=True).read()
    with pytest.warns(UserWarning, match=r"001\.png: cannot decode.*skipped it"):
        assert open_video(empty_dir).read().shape == (1, 1, 4, 4)  # the good frame is kept


def test_truncated_video_yields_its_frames_and_warns(tmp_path):
    path = write_video(tmp_path / "full.avi", moving_square(T=30), fps=10)
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    reader = open_video(cut)
    assert len(reader) == 30  # the container header still announces 30
    with pytest.warns(UserWarning, match=r"cut\.avi: decoded (\d+) of the 30 frames"):
        frames = reader.read()
    n = frames.shape[0]
    assert 1 < n < 30
    full = open_video(path).read()
    assert torch.equal(frames[:n - 1], full[:n - 1])  # intact but for the frame cut in two
    assert len(reader) == n  # and len() now tells the truth
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert reader.read(0, 3).shape[0] == 3  # reading a prefix does not warn


def test_mixed_frame_sizes_raise_unless_resized(tmp_path):
    cv2.imwrite(str(tmp_path / "0.png"), np.zeros((4, 4), np.uint8))
    cv2.imwrite(str(tmp_path / "1.png"), np.zeros((6, 4), np.uint8))
    with pytest.raises(VideoReadError, match=r"1.png: frame of 6x4 \(H x W\), but the frame file "
                                             r"0.png before it is 4x4; .*size=\(H, W\)"):
        open_video(tmp_path).read()
    assert open_video(tmp_path, size=(5, 5)).read().shape == (2, 1, 5, 5)


@pytest.mark.parametrize("chunk_size", [1, 2, 64])
def test_frame_folder_of_mixed_sizes_names_the_file_and_both_sizes(tmp_path, chunk_size):
    """An odd-sized frame in another chunk than the first frame's raised torch.cat's "Sizes of
    tensors must match" naming no file (fuzz: 18 cases); now any chunking names the file."""
    for i in range(5):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.zeros((24, 32, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "3.png"), np.zeros((7, 5), np.uint8))
    expected = re.escape(str(tmp_path / "3.png")) + r": frame of 7x5 \(H x W\), but the frame file " \
        r"0.png before it is 24x32"
    for grayscale in (None, True, False):
        reader = open_video(tmp_path, chunk_size=chunk_size, grayscale=grayscale)
        with pytest.raises(VideoReadError, match=expected):
            reader.read()
        with pytest.raises(VideoReadError, match=expected):
            list(reader)
    assert open_video(tmp_path, chunk_size=chunk_size, size=(6, 8)).read().shape == (5, 3, 6, 8)


def test_reader_checks_every_frame_against_the_first_across_chunks():
    """For every source (a video whose resolution changes mid-stream): frame i against the first."""
    class Mixed(ArrayReader):
        def _frames(self, start, stop):
            for i, f in enumerate(super()._frames(start, stop), start):
                yield f[:10] if i == 3 else f

    reader = Mixed(moving_square(T=5), chunk_size=2, grayscale=False)
    with pytest.raises(VideoReadError, match=r"array\[5, 3, 24, 32\]: frame 3 is 10x32 \(H x W\), "
                                             r"frame 0 was 24x32; .*size=\(H, W\)"):
        reader.read()


def test_official_ucsd_tiff_frames_decode_exactly():
    from PIL import Image  # an independent TIFF decoder (Pillow comes with matplotlib)

    files = sorted((OFFICIAL / "Test001").glob("*.tif"))[:3]
    frames = open_video(files).read()
    assert frames.shape == (3, 1, 240, 360)  # 8-bit grey TIFF stays single-channel
    for f, path in zip(frames, files):
        with Image.open(path) as img:
            assert img.mode == "L" and np.array_equal(f[0].numpy(), np.asarray(img))


def test_write_frames_roundtrip(tmp_path):
    v = moving_square(T=5, C=1)
    folder = write_frames(tmp_path / "out", v)
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:03d}.png" for i in range(5)]
    assert np.array_equal(read_video(folder).numpy(), v)  # PNG is lossless, grey stays grey


def test_overlay_heat_map_score_bar_and_frame_count(tmp_path):
    T, H, W = 12, 48, 64
    video = np.full((T, 1, H, W), 100, np.uint8)
    maps = torch.zeros(T, H, W)
    maps[:, :, W // 2:] = 1.0  # right half hot, left half cold
    scores = Scores(torch.linspace(0, 1, T), maps)
    path = write_overlay(tmp_path / "overlay.avi", ArrayReader(video, chunk_size=5), scores,
                         threshold=0.5, fps=5)
    out = open_video(path)
    bar = max(10, H // 8)
    assert len(out) == T and out.shape == (3, H + bar, W)
    frames = out.read().numpy().astype(int)
    r, b = frames[:, 0], frames[:, 2]  # RGB
    hot, cold = (r - b)[:, 20:H, W // 2 + 4:W - 4], (r - b)[:, 20:H, 4:W // 2 - 4]
    assert hot.mean() > 40 and abs(cold.mean()) < 8  # JET's top is red; weight 0 leaves grey
    # the bar: the last column is an alarm (red, score 1 > 0.5), the first column holds score 0
    strip = frames[0, :, H:, :]
    assert strip[0, -1, -1] > 150 and strip[2, -1, -1] < 80
    with pytest.raises(ValueError, match="video has 12 frames but scores has 13"):
        write_overlay(tmp_path / "bad.avi", video, Scores(torch.zeros(T + 1)))
    with pytest.raises(ValueError, match=r"maps are \(48, 32\)"):
        write_overlay(tmp_path / "bad2.avi", video, Scores(torch.zeros(T), torch.zeros(T, H, W // 2)))
    with pytest.raises(ValueError, match="path must end in one of"):
        write_overlay(tmp_path / "x.gif", video, scores)


def test_plot_scores_png_with_shaded_ground_truth(tmp_path):
    scores = np.sin(np.linspace(0, 6, 200))
    labels = np.zeros(200, np.uint8)
    labels[50:120] = 1
    plain = plot_scores(tmp_path / "plain.png", scores, figsize=(6, 2), dpi=100)
    shaded = plot_scores(tmp_path / "shaded.png", Scores(torch.as_tensor(scores)), labels,
                         threshold=0.5, fps=25, title="video 01", figsize=(6, 2), dpi=100)
    a, b = cv2.imread(str(plain)), cv2.imread(str(shaded))
    assert a.shape == b.shape == (200, 600, 3)
    # shading tints the plot area red: some pixels have R clearly above G and B
    reddish = lambda img: ((img[..., 2].astype(int) - img[..., 1]) > 30).sum()  # noqa: E731
    assert reddish(b) > 20 * reddish(a) + 1000
    with pytest.raises(ValueError, match="has 199 labels for a video of 200 frames"):
        plot_scores(tmp_path / "bad.png", scores, labels[:199])

"""Issue 21 part B2, "Nothing lost, nothing crashes": inputs, memory, silent wrong results. Each
test is named after the failure it guards against.

3. score()/fit() of a long video keep memory bounded (maps only when asked; score_chunks);
6. a consumed one-shot iterator is not scored as an empty video; frames of other channels are
   refused by every detector, other sizes warn unless the detector has a fixed frame size;
7. frames over max_pixels are refused from the header; a truncated MP4 says it is truncated; a
   corrupt frame file is skipped with a warning naming it (strict=True: refused);
8. FFmpeg's own messages stay off stderr; scoring a path names vadx.io.open_video.
"""

import struct
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import vadx
from vadx import detector as detector_module
from vadx import evaluation
from vadx.io import VideoReadError, image_size, open_video, write_video


class MapDiff(vadx.Detector):
    """A cheap detector with maps: |frame - training mean| per pixel; never reads its training
    frames in _fit (returns None), so fit() scores them once more for the threshold."""

    name = "map-diff-test"

    def _fit(self, videos, labels):
        self.level_ = torch.tensor(100.0)
        return None

    def _update(self, state, frames):
        maps = (frames.float().mean(dim=1) - self.level_).abs()
        return vadx.Scores(maps.mean(dim=(1, 2)), maps)


class Synthetic:
    """A re-iterable video of ``n`` grey frames made chunk by chunk: never held in memory."""

    def __init__(self, n, h=64, w=64, chunk=64):
        self.n, self.h, self.w, self.chunk = n, h, w, chunk

    def __len__(self):
        return self.n

    def __iter__(self):
        for start in range(0, self.n, self.chunk):
            t = min(self.chunk, self.n - start)
            yield torch.full((t, 1, self.h, self.w), start % 251, dtype=torch.uint8)


def _kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _peak_growth_mib(fn):
    """Peak resident memory above the current one while ``fn()`` runs (Linux: VmHWM is reset
    through /proc/self/clear_refs, so earlier tests' peaks do not count)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak resident memory")
    before = _kib("VmRSS")
    result = fn()
    return (_kib("VmHWM") - before) / 1024, result


N_LONG = 20_000  # 20,000 frames of 64x64: their maps alone would take 313 MiB


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_score_of_a_long_video_keeps_memory_bounded():
    det = MapDiff(chunk_size=64, progress=False)
    det.fit([Synthetic(256)])
    det.score(Synthetic(256), maps=False)  # warm up: allocator pools, lazy imports

    grew, scores = _peak_growth_mib(lambda: det.score(Synthetic(N_LONG), maps=False))
    assert len(scores) == N_LONG and scores.maps is None
    assert grew < 32, f"score(maps=False) of {N_LONG} frames grew the peak memory by {grew:.0f} MiB"

    def chunk_by_chunk():
        n = 0
        for s in det.score_chunks(Synthetic(N_LONG)):
            assert s.maps is not None and s.maps.shape[0] <= 64  # every chunk's maps, as scored
            n += len(s)
        return n

    grew, n = _peak_growth_mib(chunk_by_chunk)
    assert n == N_LONG and grew < 32, f"score_chunks of {N_LONG} frames grew it by {grew:.0f} MiB"

    # fit scores the training video again for threshold_: without keeping its maps
    grew, _ = _peak_growth_mib(lambda: MapDiff(progress=False).fit([Synthetic(N_LONG)]))
    assert grew < 32, f"fit on {N_LONG} frames grew the peak memory by {grew:.0f} MiB"

    # the CLI's path (vadx.evaluation.score) drops maps unless asked
    grew, (scores, _) = _peak_growth_mib(lambda: evaluation.score(det, Synthetic(N_LONG), progress=False))
    assert len(scores) == N_LONG and scores.maps is None and grew < 32


def test_score_keeps_maps_by_default_only_up_to_the_budget(monkeypatch):
    det = MapDiff(chunk_size=8, progress=False).fit([Synthetic(16, 8, 8)])
    video = Synthetic(100, 8, 8, chunk=10)
    full = det.score(video)
    assert full.maps.shape == (100, 8, 8)  # small: kept, as before
    monkeypatch.setattr(detector_module, "MAX_KEPT_MAP_BYTES", 50 * 8 * 8 * 4)  # 50 frames' maps
    with pytest.warns(UserWarning, match=r"dropped the localization maps after 58 frames.*pass "
                                         r"maps=True to keep them all"):
        dropped = det.score(video)
    assert dropped.maps is None and torch.equal(dropped.frame, full.frame)
    assert torch.equal(det.score(video, maps=True).maps, full.maps)  # asked: all kept
    assert det.score(video, maps=False).maps is None
    assert torch.equal(torch.cat([s.frame for s in det.score_chunks(video)]), full.frame)
    with pytest.raises(TypeError, match=r"maps must be None .* True or False, got 'yes'"):
        det.score(video, maps="yes")


def test_scoring_a_consumed_one_shot_iterator_again_raises():
    det = MapDiff(progress=False).fit([Synthetic(8, 8, 8)])
    frames = torch.zeros(5, 1, 8, 8, dtype=torch.uint8)
    gen = (c for c in [frames])
    assert len(det.score(gen)) == 5
    with pytest.raises(RuntimeError, match="video is a one-shot iterator that was already consumed"):
        det.score(gen)
    with pytest.raises(RuntimeError, match="one-shot iterator that was already consumed"):
        evaluation.score(det, gen, progress=False)
    it = iter([frames])
    assert len(det.score(it)) == 5
    with pytest.raises(RuntimeError, match="video is an iterator that yielded no chunk: it was "
                                           "already consumed, or is empty"):
        det.score(it)
    assert len(det.score((c for c in []))) == 0  # a fresh, empty generator is an empty video


def test_frames_of_other_channels_are_refused_even_when_fit_never_read_the_frames():
    det = MapDiff(progress=False).fit([torch.zeros(10, 3, 64, 64, dtype=torch.uint8)])
    assert det.input_shape_ == [3, 64, 64]
    with pytest.raises(ValueError, match=r"map-diff-test: frames must be colour \(C = 3\) as the "
                                         r"training frames, got grey \(C = 1\) frames of shape \(2, 1, 1, 1\)"):
        det.score(torch.zeros(2, 1, 1, 1, dtype=torch.uint8))
    # a detector that resizes or scores any size: accepted with a warning
    with pytest.warns(UserWarning, match=r"frames are 1x1 \(H x W\), the training frames were "
                                         r"64x64.*size=\(64, 64\)"):
        assert len(det.score(torch.zeros(2, 3, 1, 1, dtype=torch.uint8))) == 2

    class Fixed(MapDiff):
        name = "fixed-test"
        fixed_frame_size = True

    fixed = Fixed(progress=False).fit([open_video(np.zeros((10, 3, 64, 64), np.uint8))])
    with pytest.raises(ValueError, match=r"fixed-test: frames must be 64x64 \(H x W\) as the "
                                         r"training frames, got 1x1"):
        fixed.score(torch.zeros(2, 3, 1, 1, dtype=torch.uint8))


def _png_claiming(path, width, height):
    """A real 1x1 grey PNG whose header announces width x height (a decompression bomb's
    header; the check must refuse it before anything is decoded)."""
    ok, buf = cv2.imencode(".png", np.zeros((1, 1), np.uint8))
    data = bytearray(buf.tobytes())
    ihdr = data[12:29]  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def test_frames_over_max_pixels_are_refused_from_the_header(tmp_path, monkeypatch):
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "000.png"), np.zeros((4, 4), np.uint8))
    _png_claiming(folder / "001.png", 12000, 12000)
    assert image_size(folder / "001.png") == (12000, 12000)
    imread = cv2.imread
    decoded = []
    monkeypatch.setattr(cv2, "imread", lambda p, *a: decoded.append(Path(p).name) or imread(p, *a))
    with pytest.raises(VideoReadError, match=r"001\.png: frames of 12000x12000 \(W x H\) = "
                                             r"144000000 pixels exceed max_pixels \(40000000\)"):
        open_video(folder).read()
    assert "001.png" not in decoded  # refused before decoding
    with pytest.raises(VideoReadError, match=r"000\.png: .* 16 pixels exceed max_pixels \(15\)"):
        open_video(folder, max_pixels=15).read()
    monkeypatch.setenv("VADX_MAX_PIXELS", "15")
    with pytest.raises(VideoReadError, match=r"exceed max_pixels \(15\); pass max_pixels="):
        open_video(folder).read()
    monkeypatch.setenv("VADX_MAX_PIXELS", "lots")
    with pytest.raises(ValueError, match=r"VADX_MAX_PIXELS must be an int >= 1 .*got 'lots'"):
        open_video(folder)
    monkeypatch.delenv("VADX_MAX_PIXELS")
    with pytest.raises(ValueError, match=r"max_pixels must be None .* or an int >= 1, got 0"):
        open_video(folder, max_pixels=0)
    video = write_video(tmp_path / "clip.avi", np.zeros((3, 3, 24, 32), np.uint8))
    with pytest.raises(VideoReadError, match=r"clip\.avi: frames of 32x24 .* exceed max_pixels \(700\)"):
        open_video(video, max_pixels=700)
    assert len(open_video(video, max_pixels=768)) == 3


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated_mp4_is_reported_as_truncated(tmp_path, fraction, capfd):
    frames = np.random.default_rng(0).integers(0, 255, (30, 3, 48, 64), dtype=np.uint8)
    data = write_video(tmp_path / "full.mp4", frames, fps=10).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(VideoReadError, match=r"cut\.mp4: no frame can be decoded: the file is "
                                             r"truncated: .* the index \(moov box\) .* is missing"):
        open_video(cut)
    # FFmpeg's "moov atom not found" is quoted in the error, not printed before it
    assert "moov atom" not in capfd.readouterr().err


def test_ffmpeg_noise_stays_off_stderr(tmp_path, capfd):
    data = write_video(tmp_path / "full.mp4", np.zeros((5, 3, 16, 16), np.uint8)).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(VideoReadError, match=r"no frame can be decoded: the file is truncated.*\(FFmpeg: [^)]+\)$"):
        open_video(cut)
    assert capfd.readouterr().err == ""
    print("stderr works after", file=sys.stderr)  # the descriptor is restored
    assert capfd.readouterr().err == "stderr works after\n"


def test_score_of_a_path_names_open_video():
    det = MapDiff(progress=False).fit([Synthetic(8, 8, 8)])
    with pytest.raises(TypeError, match=r"got the path 'x\.mp4': read the file into frames first, "
                                        r"e\.g\. vadx\.io\.open_video\('x\.mp4'\)"):
        det.score("x.mp4")


def test_corrupt_jpeg_is_skipped_with_a_warning_or_refused_when_strict(tmp_path):
    for i in range(5):
        cv2.imwrite(str(tmp_path / f"{i:03d}.jpg"), np.full((8, 8, 3), 40 * i, np.uint8))
    good = (tmp_path / "002.jpg").read_bytes()
    (tmp_path / "002.jpg").write_bytes(good[:20])  # cut in its header
    with pytest.raises(VideoReadError, match=r"002\.jpg: cannot decode .*strict=True refuses it"):
        open_video(tmp_path, strict=True).read()
    reader = open_video(tmp_path)
    with pytest.warns(UserWarning, match=r"002\.jpg: cannot decode this image file .*skipped it"):
        frames = reader.read()
    assert frames.shape == (4, 3, 8, 8)
    assert [int(f.float().mean().round()) for f in frames] == [0, 40, 120, 160]  # good ones kept
    assert len(reader) == 4  # len() now counts the frames that can be read
    for name in ("000.jpg", "001.jpg", "003.jpg", "004.jpg"):
        (tmp_path / name).write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.warns(UserWarning), pytest.raises(VideoReadError, match="none of the frame files "
                                                                        "can be decoded"):
        open_video(tmp_path).read()


def test_truncated_video_is_refused_when_strict(tmp_path):
    path = write_video(tmp_path / "full.avi", np.zeros((30, 3, 24, 32), np.uint8), fps=10)
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError, match=r"cut\.avi: decoded \d+ of the 30 frames .*strict=True "
                                             r"refuses it"):
        open_video(cut, strict=True).read()

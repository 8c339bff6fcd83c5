"""The Detector contract: validation, chunking, streaming, threshold, model files."""

import json

import numpy as np
import pytest
import torch
from helpers import make_dist, make_video
from safetensors.torch import save_file

import vadx
import vadx.io
from vadx.detector import VideoChunks
from vadx.model_file import read_header as read_model_header

MEAN_DETECTOR = '''
import torch, vadx

class MeanLevel(vadx.Detector):
    """Score = |mean grey level - training mean|, plus a running count in the stream state."""
    name = "mean-level"

    def __init__(self, *, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def _fit(self, videos, labels):
        levels = torch.cat([c.float().mean(dim=(1, 2, 3)) for v in videos for c in v])
        self.level_ = levels.mean()
        self.proj_ = torch.nn.Linear(2, 1)  # a module, to exercise module save/load
        self.n_train_ = int(levels.numel())
        return (levels - self.level_).abs() * self.scale

    def _build_modules(self):
        self.proj_ = torch.nn.Linear(2, 1)

    def _update(self, state, frames):
        state["seen"] = state.get("seen", 0) + frames.shape[0]
        return vadx.Scores((frames.float().mean(dim=(1, 2, 3)) - self.level_).abs() * self.scale)

@vadx.hookimpl
def vadx_register_detectors(register):
    register(MeanLevel)
'''


@pytest.fixture
def mean_level(plugin_env, tmp_path):
    make_dist(tmp_path / "site", "vadx-mean-level", "3.1", {"mean_level": "mean_level_mod"},
              {"mean_level_mod.py": MEAN_DETECTOR})
    plugin_env(tmp_path / "site")
    return vadx.create("mean-level")


def test_threshold_is_the_false_alarm_quantile(mean_level):
    videos = [make_video(30, seed=s) for s in range(3)]
    mean_level.fit(videos)
    levels = torch.cat([v.float().mean(dim=(1, 2, 3)) for v in videos])
    expected = np.quantile((levels - levels.mean()).abs().double().numpy(), 0.99)
    assert mean_level.threshold_ == pytest.approx(expected)
    assert mean_level.n_train_ == 90


def test_inputs_are_validated(mean_level):
    with pytest.raises(vadx.NotFittedError, match="not fitted"):
        mean_level.score(make_video(3))
    mean_level.fit([make_video(10)])
    good = make_video(4)
    cases = [
        (good.float(), TypeError, r"video must be uint8 \(0..255\) \[T, C, H, W\], got dtype torch.float32"),
        (good[0], ValueError, r"must be \[T, C, H, W\], got 3-D shape \(1, 24, 32\)"),
        (good.repeat(1, 2, 1, 1), ValueError, r"C = 1 \(grey\) or 3 \(RGB\).*got shape \(4, 2, 24, 32\)"),
        (good[:, :, :0], ValueError, r"non-empty H and W"),
        ("video.mp4", TypeError, r"got the path 'video.mp4': read the file into frames first"),
    ]
    for bad, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            mean_level.score(bad)
    with pytest.raises(TypeError, match=r"must be uint8 frames \[T, C, H, W\] or an iterable of such chunks, got int"):
        mean_level.score(5)
    with pytest.raises(TypeError, match=r"wrap a single video as \[video\]"):
        mean_level.fit(good)
    with pytest.raises(ValueError, match="videos is empty"):
        mean_level.fit([])
    with pytest.raises(ValueError, match="learns from normal video only: labels must be None"):
        mean_level.fit([good], labels=[torch.zeros(4)])
    with pytest.raises(ValueError, match=r"^mean-level: false_alarm_rate must be a number in \(0, 1\), got 1.5$"):
        vadx.create("mean-level", false_alarm_rate=1.5)
    with pytest.raises(vadx.ParameterError, match=r"^mean-level: seed must be an int >= 0, got -1$"):
        vadx.create("mean-level", seed=-1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'scal'"):
        vadx.create("mean-level", scal=2)


def test_empty_video_and_numpy_and_chunk_iterables(mean_level):
    mean_level.fit([make_video(10)])
    assert len(mean_level.score(make_video(0))) == 0
    video = make_video(25, seed=3)
    ref = mean_level.score(video).frame
    assert torch.equal(mean_level.score(video.numpy()).frame, ref)
    assert torch.equal(mean_level.score([video[:3], video[3:3], video[3:]]).frame, ref)
    assert torch.equal(mean_level.score(iter([video[:10], video[10:]])).frame, ref)


def test_chunks_must_agree_and_one_shot_iterators_are_not_silently_reused():
    video = make_video(10)
    with pytest.raises(ValueError, match=r"video chunk 1 has frames of shape \(1, 24, 31\)"):
        list(VideoChunks([video, video[..., :31]], 4, torch.device("cpu")))
    once = VideoChunks((c for c in [video]), 4, torch.device("cpu"))
    assert sum(c.shape[0] for c in once) == 10
    with pytest.raises(RuntimeError, match="one-shot iterator that was already consumed"):
        list(once)


def test_stream_state_and_reset(mean_level):
    mean_level.fit([make_video(10)])
    stream = mean_level.stream()
    stream.update(make_video(5))
    stream.update(make_video(3))
    assert stream.state["seen"] == 8 and stream.frames_seen == 8
    with pytest.raises(ValueError, match=r"call reset\(\) to start a new video"):
        stream.update(make_video(2, H=10))
    stream.reset()
    with pytest.warns(UserWarning, match=r"frames are 10x32 \(H x W\), the training frames were 24x32"):
        stream.update(make_video(2, H=10))
    assert stream.state["seen"] == 2


def test_plugin_bugs_surface_with_a_clear_error(mean_level):
    mean_level.fit([make_video(10)])
    mean_level._update = lambda state, frames: vadx.Scores(torch.zeros(frames.shape[0] + 1))
    with pytest.raises(RuntimeError, match=r"returned Scores.frame of shape \(5,\) for 4 frames"):
        mean_level.score(make_video(4))


def test_save_load_roundtrip_records_plugin_and_params(mean_level, tmp_path):
    det = vadx.create("mean-level", scale=2.5, chunk_size=7).fit([make_video(20)])
    path = tmp_path / "m.safetensors"
    det.save(path)
    header = read_model_header(path)
    assert header["detector"] == "mean-level"
    assert header["plugin"] == {"name": "mean_level", "distribution": "vadx-mean-level", "version": "3.1"}
    assert header["params"] == {"false_alarm_rate": 0.01, "chunk_size": 7, "seed": 0, "progress": True,
                                "scale": 2.5}
    assert header["fitted"]["n_train_"] == 20
    loaded = vadx.load(path)
    assert loaded.get_params() == det.get_params() and loaded.threshold_ == det.threshold_
    assert torch.equal(loaded.proj_.weight, det.proj_.weight)
    video = make_video(9, seed=4)
    assert torch.equal(loaded.score(video).frame, det.score(video).frame)
    assert repr(loaded) == "MeanLevel(false_alarm_rate=0.01, chunk_size=7, seed=0, progress=True, scale=2.5)"


def test_bad_model_files(mean_level, tmp_path, plugin_env):
    det = vadx.create("mean-level").fit([make_video(10)])
    good = tmp_path / "good.safetensors"
    det.save(good)

    with pytest.raises(FileNotFoundError, match="model file not found"):
        vadx.load(tmp_path / "missing.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(vadx.ModelFileError, match="not a readable vadx model file"):
        vadx.load(garbage)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-8])
    with pytest.raises(vadx.ModelFileError, match=str(truncated)):
        vadx.load(truncated)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(vadx.ModelFileError, match="not a vadx model"):
        vadx.load(foreign)
    unknown = tmp_path / "unknown.safetensors"
    header = read_model_header(good) | {"detector": "gone", "plugin": {"distribution": "vadx-gone", "version": "9"}}
    save_file({}, str(unknown), metadata={"vadx": json.dumps(header)})
    with pytest.raises(vadx.ModelFileError, match=r"holds a 'gone' detector \(plugin vadx-gone 9\), which is not installed"):
        vadx.load(unknown)
    with pytest.raises(vadx.NotFittedError):
        vadx.create("mean-level").save(tmp_path / "unfitted.safetensors")


def test_to_device_moves_fitted_state(mean_level, device, tmp_path):
    det = mean_level.fit([make_video(12)])
    video = make_video(8, seed=5)
    expected = det.score(video).frame
    moved = det.to(device)
    assert moved is det and det.device == torch.device(device)
    assert det.level_.device.type == device and det.proj_.weight.device.type == device
    torch.testing.assert_close(det.score(video).frame.cpu(), expected)
    det.save(tmp_path / "m.safetensors")  # saved from any device, loaded where asked
    loaded = vadx.load(tmp_path / "m.safetensors", device=device)
    assert loaded.level_.device.type == device


def test_streams_know_the_frame_rate_and_refuse_bad_ones():
    class Clock(vadx.Detector):
        """Scores every frame with its time in seconds: needs the video's frame rate."""
        name = "clock-test"

        def _fit(self, videos, labels):
            self.fps_seen_ = torch.tensor([v.fps or 0.0 for v in videos])
            return torch.zeros(sum(len(torch.cat(list(v))) for v in videos))

        def _start_video(self, state, fps):
            state["fps"], state["n"] = fps or 1.0, 0

        def _update(self, state, frames):
            t = (torch.arange(frames.shape[0]) + state["n"]) / state["fps"]
            state["n"] += frames.shape[0]
            return vadx.Scores(t.float())

    video = make_video(6, H=8, W=8)
    det = Clock().fit([vadx.io.open_video(video, fps=2.0), video])
    assert det.fps_seen_.tolist() == [2.0, 0.0]  # training videos carry their rate too
    assert det.score(video, fps=2.0).frame.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert det.score(vadx.io.open_video(video, fps=2.0)).frame[1] == 0.5  # the reader's own rate
    assert det.score(video).frame[1] == 1.0  # unknown: the detector's fallback
    stream = det.stream(fps=4.0)
    assert stream.fps == 4.0 and stream.update(video[:3]).frame[2] == 0.5
    stream.reset()  # a new video starts the clock again, at the same rate
    assert stream.update(video[:2]).frame.tolist() == [0.0, 0.25]
    for bad in (0, -1.0, float("nan"), float("inf"), "30", True):
        with pytest.raises(ValueError, match=r"fps must be None or a finite number > 0 \(frames per "
                                             r"second\), got"):
            det.stream(fps=bad)

    class Chunks(list):
        fps = -3  # a source that reports a broken rate

    with pytest.raises(ValueError, match=r"video.fps must be None or a finite number > 0.*got -3"):
        det.score(Chunks([video]))

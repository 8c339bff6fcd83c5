"""vadx.testing.check_detector: passes a conforming plugin, and catches each broken rule."""

import os
import sys

import pytest
import torch
from conftest import FIXTURES

import vadx
from vadx.testing import check_detector, make_video

sys.path.insert(0, str(FIXTURES / "vadx-frame-diff"))
from vadx_frame_diff import FrameDiff  # noqa: E402  the example plugin of the README's guide


def test_the_example_plugin_conforms():
    det = check_detector(FrameDiff, min_std=2.0)
    assert det.min_std == 2.0 and det.threshold_ > 0


def test_the_example_plugins_own_test_module_passes():
    """tests/fixtures/vadx-frame-diff/tests/test_frame_diff.py, as the README's guide shows it."""
    import importlib.util

    path = FIXTURES / "vadx-frame-diff" / "tests" / "test_frame_diff.py"
    spec = importlib.util.spec_from_file_location("example_plugin_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tests = [getattr(module, n) for n in dir(module) if n.startswith("test_")]
    assert tests
    for test in tests:
        test()


class _Broken(FrameDiff):
    name = "broken"


def _expect(cls, match, **kw):
    with pytest.raises(AssertionError, match=match):
        check_detector(cls, **kw)


def test_an_undeclared_parameter_is_caught():
    class Undeclared(_Broken):
        def __init__(self, *, gain: float = 1.0, **kwargs):
            super().__init__(**kwargs)
            self.gain = gain
    _expect(Undeclared, r"without a declared constraint in `parameters`: \['gain'\]")


def test_converting_before_the_check_is_caught():
    class Converting(_Broken):
        def __init__(self, *, min_std: float = 1.0, **kwargs):
            super().__init__(**kwargs)
            self.min_std = float(min_std)  # float("text") raises before the declared check runs
    _expect(Converting, r"min_std='text' raised ValueError.*expected vadx.ParameterError")


class _Shifted(_Broken):
    """Scores shifted by ``_shift(frames)``: the broken detectors below differ only there."""

    def _update(self, state, frames):
        s = super()._update(state, frames)
        s.frame = s.frame + self._shift(frames)
        return s


def test_streaming_that_depends_on_chunking_is_caught():
    class ChunkDependent(_Shifted):
        def _shift(self, frames):
            return frames.shape[0]  # depends on how the stream was cut
    _expect(ChunkDependent, "streaming in chunks of .* differs from offline scoring")


def test_state_lost_in_save_load_is_caught():
    class Forgetful(_Shifted):
        def _fit(self, videos, labels):
            out = super()._fit(videos, labels)
            self._secret = 3.0  # not a fitted attribute (no trailing _): not saved
            return out

        def _shift(self, frames):
            return getattr(self, "_secret", 0.0)
    _expect(Forgetful, "scores after save/load are not bit-identical")


def test_an_unseeded_fit_is_caught():
    class Unseeded(_Shifted):
        def _fit(self, videos, labels):
            out = super()._fit(videos, labels)
            self.noise_ = torch.tensor(int.from_bytes(os.urandom(4), "little") / 2**32)  # not from seed
            return out

        def _shift(self, frames):
            return self.noise_
    _expect(Unseeded, "two fits with seed=0 disagree")


def test_wrong_channels_must_be_refused():
    class Lenient(_Broken):
        def _check_input(self, frames):
            pass
    _expect(Lenient, r"frames with C = 3 \(trained on C = 1\) were accepted")


def test_make_video_is_deterministic_and_marks_anomalies():
    a = make_video(12, 24, 32, anomalous=(5,), seed=1)
    assert a.shape == (12, 1, 24, 32) and a.dtype == torch.uint8
    assert torch.equal(a, make_video(12, 24, 32, anomalous=(5,), seed=1))
    assert (a[5] == 255).sum() > (a[4] == 255).sum()
    assert make_video(3, 24, 32, 3).shape == (3, 3, 24, 32)


def test_options_must_not_clash_with_parameters():
    with pytest.raises(TypeError, match="no parameters"):
        check_detector(FrameDiff, min_stdd=1.0)
    with pytest.raises(TypeError, match="vadx.Detector subclass"):
        check_detector(vadx.Scores)

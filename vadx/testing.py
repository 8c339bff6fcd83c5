"""Conformance checks for detector plugins: :func:`check_detector` runs, on tiny generated video,
every check the detector contract implies, so a plugin's own tests hold only its method::

    from vadx.testing import check_detector

    def test_contract():
        check_detector(MyDetector, epochs=1)   # cheap parameters for a quick fit

The checks: the class declares a valid ``name`` and a constraint for each constructor parameter;
the defaults construct; ``repr``/``get_params``/``clone``/``set_params`` round-trip; each
declared constraint rejects bad values with ``"<detector>: <param> must be ..., got ..."``;
an unfitted detector refuses to score; ``fit`` sets ``threshold_``, ``decision_scores_`` and
``input_shape_``; scores have the documented shapes and dtypes; a stream fed uneven chunks
(1, 2, 5, ... frames) gives the offline scores; ``save``/``vadx.load`` gives bit-identical
scores; frames with other channels (and, with ``fixed_frame_size``, another size) are refused;
two fits with the same ``seed`` agree.
"""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vadx import params as P
from vadx import progress
from vadx.detector import Detector, Scores
from vadx.errors import NotFittedError
from vadx.loading import load

__all__ = ["check_detector", "make_video"]

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
UNEVEN = (1, 2, 5, 3, 8)  # chunk sizes a stream is fed in (then the rest at once)


def make_video(n_frames: int = 30, height: int = 48, width: int = 64, channels: int = 1, *,
               anomalous: tuple[int, ...] = (), seed: int = 0) -> Tensor:
    """uint8 ``[T, C, H, W]``: a fixed textured background, a small square walking 1 px per
    frame, and in the ``anomalous`` frames a bright square jumping across the frame."""
    g = torch.Generator().manual_seed(seed)
    bg = (torch.rand(height, width, generator=torch.Generator().manual_seed(1234)) * 60 + 60).round()
    frames = bg.repeat(n_frames, 1, 1) + torch.randint(-1, 2, (n_frames, height, width), generator=g)
    s = max(2, min(height, width) // 8)
    for t in range(n_frames):
        x = t % (width - s)
        frames[t, height // 3:height // 3 + s, x:x + s] = 200
        if t in anomalous:
            big = 2 * s
            y, x = (5 * s * t) % (height - big), (5 * s * t) % (width - big)
            frames[t, y:y + big, x:x + big] = 255
    frames = frames.clamp(0, 255).to(torch.uint8).unsqueeze(1)
    return frames.repeat(1, channels, 1, 1) if channels > 1 else frames


def _fail(cls: type, what: str) -> AssertionError:
    return AssertionError(f"{cls.__name__} ({cls.name!r}) fails the detector contract: {what}")


def _check_scores(cls: type, s: Scores, t: int, hw: tuple[int, int], what: str) -> None:
    if not isinstance(s, Scores):
        raise _fail(cls, f"{what} returned {type(s).__name__}, not vadx.Scores")
    if s.frame.shape != (t,) or s.frame.dtype != torch.float32:
        raise _fail(cls, f"{what}: Scores.frame is {s.frame.dtype} {tuple(s.frame.shape)}, "
                         f"expected float32 ({t},)")
    if not torch.isfinite(s.frame).all():
        raise _fail(cls, f"{what}: Scores.frame holds non-finite scores")
    if s.maps is not None and (s.maps.shape != (t, *hw) or s.maps.dtype != torch.float32):
        raise _fail(cls, f"{what}: Scores.maps is {s.maps.dtype} {tuple(s.maps.shape)}, expected "
                         f"float32 {(t, *hw)} (input pixels)")
    for k, v in s.extras.items():
        if v.shape[:1] != (t,):
            raise _fail(cls, f"{what}: Scores.extras[{k!r}] has shape {tuple(v.shape)}")


def _same(a: Scores, b: Scores, rtol: float, atol: float) -> str | None:
    """None if ``a`` and ``b`` agree (exactly when rtol = atol = 0), else what differs."""
    pairs = [("frame", a.frame, b.frame), ("maps", a.maps, b.maps)]
    pairs += [(f"extras[{k!r}]", a.extras[k], b.extras.get(k)) for k in a.extras]
    for what, x, y in pairs:
        if (x is None) != (y is None):
            return f"{what} present in one and not the other"
        if x is None:
            continue
        if x.shape != y.shape:
            return f"{what} shapes {tuple(x.shape)} vs {tuple(y.shape)}"
        if rtol == 0 and atol == 0:
            if not torch.equal(x, y):
                return f"{what} differ (max |diff| {(x.double() - y.double()).abs().max():.3g})"
        elif not torch.allclose(x.double(), y.double(), rtol=rtol, atol=atol, equal_nan=True):
            return f"{what} differ beyond rtol={rtol}, atol={atol}"
    return None


def _labels(n: int, anomalous: tuple[int, ...]) -> Tensor:
    lab = torch.zeros(n, dtype=torch.long)
    lab[list(anomalous)] = 1
    return lab


def check_detector(cls: type[Detector], *, video_shape: tuple[int, int, int, int] = (30, 1, 48, 64),
                   n_videos: int = 2, stream_tol: tuple[float, float] = (0.0, 0.0),
                   reproducible: bool = True, **params: Any) -> Detector:
    """Check ``cls`` against the detector contract (module docstring) and return the fitted
    detector (for the plugin's own tests).

    Args:
        cls: a :class:`vadx.Detector` subclass.
        video_shape: ``(T, C, H, W)`` of each generated training and test video.
        n_videos: training videos (supervised detectors get ``n_videos + 2``, half with an
            anomalous segment, so a validation split has both classes).
        stream_tol: ``(rtol, atol)`` between streamed and offline scores (default: exact;
            loosen only where batching changes floating-point sums).
        reproducible: also fit a second time with the same seed and compare the scores.
        **params: cheap parameters for a quick fit (fewer epochs, small networks).
    Raises:
        AssertionError naming the class and the broken rule.
    """
    options = {"video_shape", "n_videos", "stream_tol", "reproducible"}
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise TypeError(f"check_detector takes a vadx.Detector subclass, got {cls!r}")
    if not isinstance(cls.name, str) or not _NAME.match(cls.name):
        raise _fail(cls, f"name must be lower case like 'fcn-cascade', got {cls.name!r}")
    names = cls.param_names()
    clash = options & set(names)
    if clash:
        raise TypeError(f"{cls.__name__} has parameters named like check_detector's options: {clash}")
    unknown = set(params) - set(names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no parameters {sorted(unknown)}")
    constraints = cls.param_constraints()
    undeclared = [n for n in names if n not in constraints]
    if undeclared:
        raise _fail(cls, f"parameters without a declared constraint in `parameters`: {undeclared}")
    params = {"progress": False, **params}
    T, C, H, W = video_shape

    # parameters: defaults, round trips, rejections
    cls()
    det = cls(**params)
    again = cls(**det.get_params())
    if again.get_params() != det.get_params() or repr(again) != repr(det):
        raise _fail(cls, f"get_params()/repr do not round-trip: {det!r} vs {again!r}")
    if det.clone().get_params() != det.get_params():
        raise _fail(cls, "clone() changed the parameters")
    for name in names:
        for bad in P.invalid_examples(constraints[name]):
            try:
                cls(**{**params, name: bad})
            except Exception as e:
                if not (isinstance(e, P.ParameterError) and str(e).startswith(f"{cls.name}: {name} must be ")):
                    raise _fail(cls, f"{name}={bad!r} raised {type(e).__name__}({str(e)!r}); expected "
                                     f"vadx.ParameterError('{cls.name}: {name} must be <constraint>, "
                                     f"got {bad!r}') (store parameters as given in __init__)") from e
            else:
                raise _fail(cls, f"{name}={bad!r} was accepted; its constraint is "
                                 f"{P.describe(constraints[name])}")
    try:
        det.set_params(**{names[0]: P.invalid_examples(constraints[names[0]])[0]})
    except P.ParameterError:
        pass
    else:
        raise _fail(cls, f"set_params accepted a bad {names[0]}")

    # fit
    test = make_video(T, H, W, C, anomalous=tuple(range(T // 2, T // 2 + 6)), seed=99)
    try:
        det.score(test)
    except NotFittedError:
        pass
    else:
        raise _fail(cls, "an unfitted detector scored video instead of raising NotFittedError")

    def fit(d: Detector) -> Detector:
        if cls.supervised:
            anomalous = tuple(range(T // 3, T // 3 + max(4, T // 4)))
            videos = [make_video(T, H, W, C, anomalous=anomalous if i % 2 else (), seed=i)
                      for i in range(n_videos + 2)]
            return d.fit(videos, [_labels(T, anomalous if i % 2 else ()) for i in range(n_videos + 2)])
        return d.fit([make_video(T, H, W, C, seed=i) for i in range(n_videos)])

    with progress.silenced():
        fit(det)
    if not isinstance(det.threshold_, float) or math.isnan(det.threshold_):
        raise _fail(cls, f"threshold_ must be a float after fit, got {det.threshold_!r}")
    ds = getattr(det, "decision_scores_", None)
    if not isinstance(ds, Tensor) or ds.dim() != 1 or ds.dtype != torch.float32 or ds.numel() == 0:
        raise _fail(cls, "decision_scores_ must be a non-empty float32 [N] tensor after fit")
    if det.input_shape_ != [C, H, W]:
        raise _fail(cls, f"input_shape_ is {det.input_shape_}, expected {[C, H, W]}")

    # scores, streaming == offline
    offline = det.score(test)
    _check_scores(cls, offline, T, (H, W), "score()")
    stream, parts, start, i = det.stream(), [], 0, 0
    while start < T:
        n = UNEVEN[i] if i < len(UNEVEN) else T - start
        parts.append(stream.update(test[start:start + n]))
        start, i = start + n, i + 1
    diff = _same(offline, Scores.cat(parts), *stream_tol)
    if diff:
        raise _fail(cls, f"streaming in chunks of {UNEVEN} frames differs from offline scoring: {diff}")
    stream.reset()
    diff = _same(offline, Scores.cat([stream.update(test)]), *stream_tol)
    if diff:
        raise _fail(cls, f"a reset stream differs from offline scoring: {diff}")

    # save / load
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.vadx"
        det.save(path)
        loaded = load(path, cls=cls)
    if loaded.get_params() != det.get_params() or loaded.threshold_ != det.threshold_:
        raise _fail(cls, "a loaded model has other parameters or threshold_")
    diff = _same(offline, loaded.score(test), 0.0, 0.0)
    if diff:
        raise _fail(cls, f"scores after save/load are not bit-identical: {diff}")

    # input the model was not fitted for
    other_c = 3 if C == 1 else 1
    try:
        det.score(make_video(4, H, W, other_c))
    except ValueError as e:
        if cls.name not in str(e):
            raise _fail(cls, f"frames with C = {other_c} were refused without naming the detector: {e}") from e
    else:
        raise _fail(cls, f"frames with C = {other_c} (trained on C = {C}) were accepted")
    if cls.fixed_frame_size:
        try:
            det.score(make_video(4, H + 8, W + 8, C))
        except ValueError:
            pass
        else:
            raise _fail(cls, "fixed_frame_size is set but frames of another size were accepted")

    # the same seed, the same model
    if reproducible:
        twin = cls(**det.get_params())
        with progress.silenced():
            fit(twin)
        diff = _same(offline, twin.score(test), 0.0, 0.0)
        if diff:
            raise _fail(cls, f"two fits with seed={det.seed} disagree: {diff}")
    return det

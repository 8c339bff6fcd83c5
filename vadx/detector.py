"""The detector contract every vadx method implements (PyOD / scikit-learn conventions).

A *video* is uint8 frames ``[T, C, H, W]`` (C = 1 grey or 3 RGB; a torch tensor or a NumPy array)
or an iterable of such chunks, so a long video is scored in bounded memory. The base class owns
everything generic: parameter checks, seeding, progress, input validation, chunking, streaming
state, the fitted threshold, device moves and model files. A plugin subclass provides:

- ``name``: the registry name (lower case, e.g. ``"fcn-cascade"``);
- ``parameters``: a dict declaring what each constructor parameter accepts
  (:mod:`vadx.params`); the base class checks them all when the object is built, with one
  message format, and ``_check_params()`` may add rules that tie several together;
- ``__init__(self, *, <params with the paper's defaults>, **kwargs)`` calling
  ``super().__init__(**kwargs)`` and storing each parameter, as given, under its own name
  (``seed``, ``progress``, ``false_alarm_rate`` and ``chunk_size`` belong to the base class);
- ``_fit(self, videos, labels)``: learn from the videos (each a re-iterable of validated uint8
  chunks on ``self.device``); store fitted state in attributes ending in ``_`` (tensors,
  ``nn.Module``s or JSON values); return the frame scores of the normal training frames (they
  become ``decision_scores_`` and set ``threshold_``), or None to have the base class score the
  training videos once more for them. ``_fit`` runs seeded with ``seed`` (and may re-seed parts
  with :meth:`Detector.seeded` / :meth:`Detector.generator`); long loops report through
  :meth:`Detector.progress_bar`;
- ``_update(self, state, frames) -> Scores``: score one chunk of a stream, keeping whatever must
  carry over to the next chunk in the dict ``state`` (previous frames, recurrent state); one score
  per input frame;
- optionally ``_build_modules(self)``: create the (untrained) ``nn.Module`` attributes from the
  parameters and fitted JSON values, so that :func:`vadx.load` can fill them from a file; it
  runs once on the meta device first (``torch.device("meta")``, ``self.device`` meta) so that
  load can check a file's sizes before allocating, so it must not read files or tensor values;
- optionally ``_threshold(self, train_scores)``: the alarm threshold (default: the
  ``1 - false_alarm_rate`` quantile of the training scores);
- optionally ``presets()`` (named parameter sets, :class:`vadx.params.Preset`; the base class
  offers ``"demo"`` from ``demo_params()``) and ``map_params`` (the parameter values that switch
  optional localization maps on, which ``vadx score --overlay`` sets).

``score()`` runs the same ``_update`` over the chunks of a video, so offline scores equal
streaming scores by construction. :func:`vadx.testing.check_detector` checks a subclass against
this contract.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from vadx import model_file, params, progress
from vadx.errors import NotFittedError


# Detector.score(maps=None) keeps localization maps up to this many bytes (256 MiB: all maps of
# ~780 frames of 240x360 at 4 bytes a pixel); beyond it drops them, so memory stays bounded.
MAX_KEPT_MAP_BYTES = 256 * 2**20


@dataclass
class Scores:
    """Per-frame results of scoring ``T`` frames.

    Attributes:
        frame: ``[T]`` float32 anomaly scores, higher = more anomalous.
        maps: optional ``[T, H, W]`` float32 localization maps in input-frame pixels.
        extras: optional named per-frame tensors ``[T, ...]`` a method exposes for inspection
            (e.g. raw classifier confidences, each voter's score).
    """

    frame: Tensor
    maps: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    @staticmethod
    def cat(parts: list[Scores]) -> Scores:
        """Concatenate the scores of consecutive chunks."""
        if not parts:
            return Scores(torch.empty(0))
        maps = None
        if all(p.maps is not None for p in parts):
            maps = torch.cat([p.maps for p in parts])
        extras = {k: torch.cat([p.extras[k] for p in parts]) for k in parts[0].extras
                  if all(k in p.extras for p in parts)}
        return Scores(torch.cat([p.frame for p in parts]), maps, extras)

    def _check(self, n_frames: int, hw: tuple[int, int], who: str) -> Scores:
        """Validate what a plugin returned for n_frames frames of size hw (plugin bugs surface here)."""
        if not isinstance(self.frame, Tensor) or self.frame.shape != (n_frames,):
            got = tuple(self.frame.shape) if isinstance(self.frame, Tensor) else type(self.frame)
            raise RuntimeError(f"{who} returned Scores.frame of shape {got} for {n_frames} frames; "
                               f"expected ({n_frames},)")
        self.frame = self.frame.detach().float()
        if self.maps is not None:
            if self.maps.shape != (n_frames, *hw):
                raise RuntimeError(f"{who} returned Scores.maps of shape {tuple(self.maps.shape)}; "
                                   f"expected {(n_frames, *hw)} (one map per frame, input pixels)")
            self.maps = self.maps.detach().float()
        for k, v in self.extras.items():
            if v.shape[:1] != (n_frames,):
                raise RuntimeError(f"{who} returned Scores.extras[{k!r}] of shape "
                                   f"{tuple(v.shape)}; expected ({n_frames}, ...)")
            self.extras[k] = v.detach()
        return self


class _Growing:
    """Per-chunk tensors ``[t, ...]`` concatenated into one buffer that doubles when full.

    Keeping one small tensor per chunk between each chunk's large transient ones (maps,
    features) fragments the C heap: resident memory grew ~1 MiB a chunk (310 MiB for 20,000
    frames of 64x64) although nothing large was kept. A few doubling buffers do not."""

    def __init__(self) -> None:
        self.buf: Tensor | None = None
        self.n = 0

    def add(self, x: Tensor) -> None:
        t = int(x.shape[0])
        if self.buf is None:
            self.buf = x.new_empty((max(t, 1024), *x.shape[1:]))
        elif self.n + t > self.buf.shape[0]:
            grown = self.buf.new_empty((max(2 * self.buf.shape[0], self.n + t), *self.buf.shape[1:]))
            grown[:self.n] = self.buf[:self.n]
            self.buf = grown
        self.buf[self.n:self.n + t] = x
        self.n += t

    def result(self) -> Tensor:
        return self.buf[:self.n].clone()


class _ScoresBuilder:
    """The concatenated :class:`Scores` of consecutive chunks, in memory bounded by the chunk
    size where maps are not kept (see :class:`_Growing`); kept maps are concatenated once."""

    def __init__(self) -> None:
        self.frame = _Growing()
        self.extras: dict[str, _Growing] | None = None
        self.maps: list[Tensor] | None = []

    def add(self, s: Scores, *, keep_maps: bool, device: torch.device | None = None) -> None:
        move = (lambda x: x) if device is None else (lambda x: x.to(device))
        if len(s) == 0:
            return
        self.frame.add(move(s.frame))
        if self.extras is None:
            self.extras = {k: _Growing() for k in s.extras}
        for k in list(self.extras):  # as Scores.cat: only the entries every chunk has
            if k in s.extras:
                self.extras[k].add(move(s.extras[k]))
            else:
                del self.extras[k]
        if keep_maps and s.maps is not None and self.maps is not None:
            self.maps.append(move(s.maps))
        else:
            self.maps = None

    def drop_maps(self) -> None:
        self.maps = None

    def result(self) -> Scores:
        if self.frame.buf is None:
            return Scores(torch.empty(0))
        maps = torch.cat(self.maps) if self.maps else None
        return Scores(self.frame.result(), maps, {k: g.result() for k, g in (self.extras or {}).items()})


def check_frames(frames: Any, what: str = "frames") -> Tensor:
    """Validate one chunk of frames: a uint8 tensor/array ``[T, C, H, W]``, C in {1, 3}."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not isinstance(frames, Tensor):
        raise TypeError(f"{what} must be a uint8 tensor [T, C, H, W], got {type(frames).__name__}")
    if frames.dtype != torch.uint8:
        raise TypeError(f"{what} must be uint8 (0..255) [T, C, H, W], got dtype {frames.dtype}")
    if frames.dim() != 4:
        raise ValueError(f"{what} must be [T, C, H, W], got {frames.dim()}-D shape {tuple(frames.shape)}")
    if frames.shape[1] not in (1, 3):
        raise ValueError(f"{what} must have C = 1 (grey) or 3 (RGB) channels in [T, C, H, W], "
                         f"got shape {tuple(frames.shape)}")
    if frames.shape[2] == 0 or frames.shape[3] == 0:
        raise ValueError(f"{what} must have non-empty H and W, got shape {tuple(frames.shape)}")
    return frames


def check_fps(fps: Any, name: str = "fps") -> float | None:
    """``fps`` as a float, or None (frame rate unknown); anything else raises naming ``name``."""
    if fps is None:
        return None
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) \
            or not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"{name} must be None or a finite number > 0 (frames per second), got {fps!r}")
    return float(fps)


class VideoChunks:
    """A validated, re-iterable view of one video as chunks of at most ``chunk_size`` frames.

    Iterating a one-shot source (a generator, an iterator) a second time raises instead of
    silently yielding nothing, also when it is wrapped anew (each ``score()`` call wraps its
    video): an exhausted generator is recognised by its state, and any other iterator that
    yields no chunk at all is refused, since an exhausted one cannot be told from an empty one.
    """

    def __init__(self, video: Any, chunk_size: int, device: torch.device, name: str = "video"):
        if isinstance(video, (Tensor, np.ndarray)):
            video = check_frames(video, name)
        elif isinstance(video, (str, bytes, os.PathLike)):
            path = os.fsdecode(video) if isinstance(video, bytes) else os.fspath(video)
            raise TypeError(f"{name} must be decoded frames [T, C, H, W] uint8, got the path "
                            f"{path!r}: read the file into frames first, e.g. "
                            f"vadx.io.open_video({path!r}) (a re-iterable reader of chunks)")
        elif not isinstance(video, Iterable):
            raise TypeError(f"{name} must be uint8 frames [T, C, H, W] or an iterable of such "
                            f"chunks, got {type(video).__name__}")
        self.source, self.chunk_size, self.device, self.name = video, chunk_size, device, name
        self.fps = check_fps(getattr(video, "fps", None), f"{name}.fps")  # None: not known
        # (C, H, W), known once read (at once for a tensor)
        self.frame_shape: tuple[int, int, int] | None = \
            tuple(video.shape[1:]) if isinstance(video, Tensor) else None
        self._one_shot = not isinstance(video, Tensor) and iter(video) is video
        self._consumed = False

    def _consumed_error(self) -> RuntimeError:
        return RuntimeError(f"{self.name} is a one-shot iterator that was already consumed; pass "
                            f"a tensor, a list of chunks or a re-iterable reader "
                            f"(vadx.io.open_video)")

    def __iter__(self) -> Iterator[Tensor]:
        if isinstance(self.source, Tensor):
            self.frame_shape = tuple(self.source.shape[1:])
            for start in range(0, self.source.shape[0], self.chunk_size):
                yield self.source[start:start + self.chunk_size].to(self.device)
            return
        if self._one_shot and (self._consumed or (
                inspect.isgenerator(self.source)
                and inspect.getgeneratorstate(self.source) == inspect.GEN_CLOSED)):
            raise self._consumed_error()
        self._consumed = True
        shape = None
        i = -1
        for i, chunk in enumerate(self.source):
            chunk = check_frames(chunk, f"{self.name} chunk {i}")
            if shape is not None and chunk.shape[1:] != shape:
                raise ValueError(f"{self.name} chunk {i} has frames of shape {tuple(chunk.shape[1:])}; "
                                 f"earlier chunks had {tuple(shape)}")
            shape = chunk.shape[1:]
            self.frame_shape = tuple(shape)
            for start in range(0, chunk.shape[0], self.chunk_size):
                yield chunk[start:start + self.chunk_size].to(self.device)
        # an exhausted iterator (not a generator: its state tells) yields nothing, as an empty
        # one would: refuse both rather than return no scores for a video that had frames
        if i < 0 and self._one_shot and not inspect.isgenerator(self.source):
            raise RuntimeError(f"{self.name} is an iterator that yielded no chunk: it was already "
                               f"consumed, or is empty; pass a tensor, a list of chunks or a "
                               f"re-iterable reader (vadx.io.open_video)")


class Stream:
    """Scores a live video chunk by chunk; ``update`` carries state (e.g. previous frames).

    ``fps`` is the video's frame rate when known (None otherwise); detectors whose scores depend
    on time rather than on frame counts (e.g. two-stream's accumulator) read it in
    :meth:`Detector._start_video`.
    """

    def __init__(self, detector: Detector, *, fps: float | None = None):
        detector._check_fitted()
        self.detector = detector
        self.fps = check_fps(fps)
        self.reset()

    def reset(self) -> None:
        """Start a new video: forget every frame seen."""
        self.state: dict[str, Any] = {}
        self.frames_seen = 0
        self._shape: tuple[int, ...] | None = None
        self.detector._start_video(self.state, self.fps)

    def update(self, frames: Any) -> Scores:
        """Score the next chunk of frames ``[t, C, H, W]`` uint8; returns ``t`` scores."""
        frames = check_frames(frames)
        if self._shape is None:  # once per video: later chunks must match this one
            self.detector._check_input(frames)
        if self._shape is not None and tuple(frames.shape[1:]) != self._shape:
            raise ValueError(f"frames of shape {tuple(frames.shape[1:])} in a stream of frames of "
                             f"shape {self._shape}; call reset() to start a new video")
        self._shape = tuple(frames.shape[1:])
        t, hw = frames.shape[0], tuple(frames.shape[2:])
        if t == 0:
            return Scores(torch.empty(0))
        with torch.inference_mode():
            scores = self.detector._update(self.state, frames.to(self.detector.device))
        self.frames_seen += t
        return scores._check(t, hw, f"{type(self.detector).__name__}._update")


class _Checked(type):
    """Checks a detector's parameters once its ``__init__`` chain has run (whatever the depth
    of subclassing), so a plugin's constructor only stores them."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        det = super().__call__(*args, **kwargs)
        det._validate_params()
        return det


class Detector(metaclass=_Checked):
    """Base class of every vadx detector; see the module docstring for what a subclass provides.

    Args:
        false_alarm_rate: target fraction of normal training frames above ``threshold_``; the
            threshold is the ``1 - false_alarm_rate`` quantile of the normal training scores.
        chunk_size: frames per chunk when a whole video is scored (bounds memory).
        seed: seeds everything random in ``fit`` (weights, sampling, dropout), so a fit is
            reproducible on the same machine; the global random state is left as it was.
        progress: show progress bars while fitting (on a terminal only; ``vadx --quiet`` and
            :func:`vadx.progress.silenced` silence them whatever this says).

    Fitted attributes of every detector: ``threshold_``, ``decision_scores_`` (float32 ``[N]``
    scores of the normal training frames, PyOD's name) and ``input_shape_`` (``[C, H, W]`` of
    the training frames, or None).
    """

    name: ClassVar[str] = ""
    supervised: ClassVar[bool] = False  # True: fit() needs frame labels
    # True: score/stream accept only frames of the training frames' size (H, W), e.g. when the
    # frame score is a maximum over a fixed grid of regions; channels must always match.
    fixed_frame_size: ClassVar[bool] = False
    parameters: ClassVar[dict[str, Any]] = {
        "false_alarm_rate": params.Interval(float, 0, 1, closed="neither"),
        "chunk_size": params.Interval(int, 1),
        "seed": params.Interval(int, 0),
        "progress": params.Bool(),
    }
    _vadx_plugin: ClassVar[dict[str, Any] | None] = None  # set by the host at registration
    # Parameter values under which score() returns localization maps (Scores.maps), for a
    # detector whose maps are optional: `vadx score --overlay` sets them on the loaded detector
    # (set_params; only scoring reads them). {}: its maps need no switch, or it makes none.
    map_params: ClassVar[dict[str, Any]] = {}

    @classmethod
    def demo_params(cls) -> dict[str, Any]:
        """Parameters ``vadx demo`` creates this detector with, so that fitting it on the small
        synthetic scene takes about a minute on a laptop CPU (e.g. fewer epochs; random backbone
        weights unless ``VADX_WEIGHTS_DIR`` is set). The paper's values stay the defaults."""
        return {}

    @classmethod
    def presets(cls) -> dict[str, params.Preset]:
        """Named parameter sets (:class:`vadx.params.Preset`) for ``vadx.create(name,
        preset=...)``, ``vadx fit NAME --preset ...`` and ``vadx info``. The base class offers
        ``"demo"`` (:meth:`demo_params`); a subclass adds its own, by convention ``"cpu"`` (its
        measured recipe on a small CPU) and ``"paper"`` (the paper's values), as
        ``{**super().presets(), "cpu": Preset({...}, "why"), ...}``."""
        return {"demo": params.Preset(cls.demo_params(), params.PRESET_NAMES["demo"])}

    @classmethod
    def from_preset(cls, preset: str | None = None, **kwargs: Any) -> Detector:
        """A new detector with preset ``preset``'s parameters, ``kwargs`` overriding them (None:
        ``kwargs`` alone, as ``cls(**kwargs)``). The preset's name, and which parameters were
        given on top of it, are kept (:attr:`preset`) and saved in model files."""
        if preset is None:
            return cls(**kwargs)
        who = cls.name or cls.__name__
        offered = cls.presets()
        if not isinstance(preset, str) or preset not in offered:
            raise params.ParameterError(
                f"{who}: preset must be one of {', '.join(map(repr, offered)) or '(none)'}, got "
                f"{preset!r}")
        values = dict(offered[preset].params)
        unknown = sorted(set(values) - set(cls.param_names()))
        if unknown:  # a plugin bug: say whose
            raise params.ParameterError(f"{who}: preset {preset!r} sets {unknown[0]!r}, which is "
                                        f"not a parameter; its parameters: "
                                        f"{', '.join(cls.param_names())}")
        det = cls(**{**values, **kwargs})
        det._preset = {"name": preset, "overrides": sorted(kwargs)}
        return det

    @property
    def preset(self) -> dict[str, Any] | None:
        """``{"name": <preset>, "overrides": [<parameters given on top of it>]}`` if this
        detector was made from a preset (:meth:`from_preset`, or loaded from a file that
        records one), else None."""
        return getattr(self, "_preset", None)

    def __init__(self, *, false_alarm_rate: float = 0.01, chunk_size: int = 64, seed: int = 0,
                 progress: bool = True):
        self.false_alarm_rate = false_alarm_rate
        self.chunk_size = chunk_size
        self.seed = seed
        self.progress = progress
        self.device = torch.device("cpu")
        self.threshold_: float | None = None
        self._fitted = False

    # ----------------------------------------------------------------- for plugin authors
    def _fit(self, videos: list[VideoChunks], labels: list[Tensor] | None) -> Tensor | None:
        raise NotImplementedError(f"{type(self).__name__} must implement _fit(videos, labels)")

    def _update(self, state: dict[str, Any], frames: Tensor) -> Scores:
        raise NotImplementedError(f"{type(self).__name__} must implement _update(state, frames)")

    def _start_video(self, state: dict[str, Any], fps: float | None) -> None:
        """Called with a new video's empty stream ``state`` and its frame rate (None when
        unknown), before its first chunk; detectors that measure time in seconds keep what they
        need in ``state``. Default: nothing."""

    def _build_modules(self) -> None:
        """Create untrained nn.Module attributes (ending in ``_``) before a load fills them."""

    def _check_params(self) -> None:
        """Rules that tie several parameters together; raise ``self._param_error(...)``."""

    def _threshold(self, train_scores: Tensor) -> float:
        """``threshold_`` from the normal training scores: their ``1 - false_alarm_rate`` quantile."""
        values = torch.as_tensor(train_scores).detach().double().cpu().numpy().ravel()
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise RuntimeError(f"{type(self).__name__}: no finite training scores to set threshold_")
        return float(np.quantile(values, 1.0 - self.false_alarm_rate))

    def _param_error(self, name: str, must_be: str) -> params.ParameterError:
        """The error for parameter ``name`` (raise it), in the one message format."""
        return params.invalid(self.name or type(self).__name__, name, must_be, getattr(self, name, None))

    @contextmanager
    def seeded(self, offset: int = 0) -> Iterator[None]:
        """Run a block with torch's random state seeded from ``seed + offset``, restored after."""
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed + offset)
            yield

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU ``torch.Generator`` seeded from ``seed + offset`` (sampling, shuffling)."""
        return torch.Generator().manual_seed(self.seed + offset)

    def progress_bar(self, total: int | None, desc: str, unit: str = "step") -> progress.Bar:
        """A progress bar for long work in ``fit`` (shown if ``progress`` and not silenced);
        ``bar.update(n, loss=...)`` shows the current loss."""
        return progress.bar(total, desc, unit, show=self.progress)

    # ----------------------------------------------------------------- parameters
    @classmethod
    def param_names(cls) -> list[str]:
        """Names of the constructor's keyword-only parameters, the base class's included."""
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.kind is p.KEYWORD_ONLY and p.name not in names:
                    names.append(p.name)
        return names

    @classmethod
    def param_constraints(cls) -> dict[str, Any]:
        """What each parameter accepts (``parameters`` of the class and its bases merged)."""
        merged: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            merged.update(klass.__dict__.get("parameters", {}))
        return merged

    def _validate_params(self) -> None:
        who = self.name or type(self).__name__
        constraints = self.param_constraints()
        for name in self.param_names():
            if not hasattr(self, name):
                raise TypeError(f"{type(self).__name__}.__init__ must store parameter {name!r} as "
                                f"self.{name} (get_params, save and clone read it there)")
            if name in constraints:  # a third party's undeclared parameter is taken as given
                setattr(self, name, params.check(who, name, getattr(self, name), constraints[name]))
        self._check_params()

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters (keyword-only, as passed to ``vadx.create``)."""
        return {n: getattr(self, n) for n in self.param_names()}

    def set_params(self, **new: Any) -> Detector:
        """Change parameters (checked as at construction); a fitted detector keeps its fitted
        state, so change only what scoring reads, or fit again. Returns self."""
        unknown = sorted(set(new) - set(self.param_names()))
        if unknown:
            raise params.ParameterError(f"{self.name or type(self).__name__}: no parameter "
                                        f"{unknown[0]!r}; its parameters: {', '.join(self.param_names())}")
        checked = type(self)(**{**self.get_params(), **new})
        for k in new:
            setattr(self, k, getattr(checked, k))
        if self.preset is not None:  # the file then says which values are not the preset's
            self._preset = {**self.preset, "overrides": sorted({*self.preset["overrides"], *new})}
        return self

    def clone(self) -> Detector:
        """A new, unfitted detector with the same parameters (and preset record)."""
        twin = type(self)(**self.get_params())
        if self.preset is not None:
            twin._preset = dict(self.preset)
        return twin

    def __repr__(self) -> str:
        params_ = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params_})"

    # ----------------------------------------------------------------- fit, score
    def _videos(self, videos: Any, what: str) -> list[VideoChunks]:
        if isinstance(videos, (Tensor, np.ndarray)):
            raise TypeError(f"{what} must be a list of videos (each [T, C, H, W] or an iterable of "
                            f"chunks); wrap a single video as [video]")
        if not isinstance(videos, Iterable):
            raise TypeError(f"{what} must be a list of videos, got {type(videos).__name__}")
        out = [VideoChunks(v, self.chunk_size, self.device, f"{what}[{i}]") for i, v in enumerate(videos)]
        if not out:
            raise ValueError(f"{what} is empty: fit needs at least one video")
        return out

    def fit(self, videos: Iterable[Any], labels: list[Any] | None = None) -> Detector:
        """Learn normality from ``videos`` (normal only unless the detector is supervised).

        Args:
            videos: a list of videos; each uint8 ``[T, C, H, W]`` or an iterable of chunks.
            labels: per-video frame labels ``[T]`` (0 normal, 1 anomalous) for supervised
                detectors; must be None otherwise.
        """
        chunks = self._videos(videos, "videos")
        if self.supervised:
            if labels is None or len(labels) != len(chunks):
                raise ValueError(f"detector {self.name!r} is supervised: labels must be a list of "
                                 f"{len(chunks)} per-frame label tensors, got "
                                 f"{'None' if labels is None else len(labels)}")
            labels = [torch.as_tensor(lab) for lab in labels]
        elif labels is not None:
            raise ValueError(f"detector {self.name!r} learns from normal video only: labels must "
                             f"be None, got {type(labels).__name__}")
        self._fitted = False
        with self.seeded():
            train_scores = self._fit(chunks, labels)
        if train_scores is None:
            self._fitted = True
            self.input_shape_ = self._training_shape(chunks)
            train_scores = torch.cat([self.score(v, maps=False).frame for v in chunks])
        # (C, H, W) of the training frames, saved with the model: how to read new video for it,
        # and what _check_input holds new frames to
        return self._complete_fit(train_scores, self._training_shape(chunks))

    @staticmethod
    def _training_shape(chunks: list[VideoChunks]) -> list[int] | None:
        """(C, H, W) of the first training video, read from its first chunk if ``_fit`` did not
        iterate it (a detector that samples frames or learns from precomputed features)."""
        for c in chunks:
            if c.frame_shape is None and not c._one_shot:
                it = iter(c)  # re-iterable: read one chunk, then close the source
                next(it, None)
                it.close()
            if c.frame_shape is not None:
                return [int(x) for x in c.frame_shape]
        return None

    def _complete_fit(self, train_scores: Tensor, input_shape: Any = None) -> Detector:
        """Mark fitted: ``decision_scores_``, ``threshold_`` (``_threshold``) and ``input_shape_``.
        For a plugin's own fit path (e.g. from cached features) that bypasses :meth:`fit`."""
        self.input_shape_ = list(input_shape) if input_shape is not None else None
        self.decision_scores_ = torch.as_tensor(train_scores).detach().float().cpu().reshape(-1)
        self.threshold_ = float(self._threshold(self.decision_scores_))
        self._fitted = True
        return self

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError(f"this {type(self).__name__} is not fitted: call fit() or vadx.load()")

    def _check_input(self, frames: Tensor) -> None:
        """Frames must have the training frames' channels, for every detector; and their size
        (H, W) if ``fixed_frame_size``. Other detectors accept another size (they resize
        internally or score any size) with a warning, since scores are calibrated
        (``threshold_``) on frames of the training size. Called once per video (stream)."""
        shape = getattr(self, "input_shape_", None)
        if not shape:
            return
        c, h, w = (int(s) for s in frames.shape[1:])
        kind = {1: "grey (C = 1)", 3: "colour (C = 3)"}
        if c != shape[0]:
            raise ValueError(f"{self.name}: frames must be {kind[shape[0]]} as the training frames, "
                             f"got {kind.get(c, c)} frames of shape {tuple(frames.shape)}; read the "
                             f"video with {'grayscale=True' if shape[0] == 1 else 'grayscale=False'}")
        if [h, w] != [int(s) for s in shape[1:]]:
            if self.fixed_frame_size:
                raise ValueError(f"{self.name}: frames must be {shape[1]}x{shape[2]} (H x W) as the "
                                 f"training frames, got {h}x{w} (shape {tuple(frames.shape)}); "
                                 f"resize them first (vadx.io.open_video(..., size=({shape[1]}, "
                                 f"{shape[2]})))")
            warnings.warn(f"{self.name}: frames are {h}x{w} (H x W), the training frames were "
                          f"{shape[1]}x{shape[2]}; the detector accepts them, but threshold_ was set "
                          f"on the training size: read the video with size=({shape[1]}, "
                          f"{shape[2]}) for comparable scores", UserWarning, stacklevel=4)

    def stream(self, *, fps: float | None = None) -> Stream:
        """A stream that scores a live video chunk by chunk; ``fps``: its frame rate, if known."""
        return Stream(self, fps=fps)

    def score_chunks(self, video: Any, *, fps: float | None = None) -> Iterator[Scores]:
        """Score a video chunk by chunk: yields the :class:`Scores` of each chunk of at most
        ``chunk_size`` frames (maps included where the detector makes them) as it is scored, so
        memory stays bounded by the chunk size whatever the video's length; the caller keeps
        what it needs. ``fps`` as in :meth:`score`. The same scores as :meth:`score`."""
        chunks = VideoChunks(video, self.chunk_size, self.device)  # errors raise here, not
        stream = self.stream(fps=chunks.fps if fps is None else fps)  # at the first next()
        return (stream.update(chunk) for chunk in chunks)

    def score(self, video: Any, *, fps: float | None = None, maps: bool | None = None) -> Scores:
        """Score every frame of a video (a tensor, array or iterable of chunks).

        Args:
            video: uint8 ``[T, C, H, W]`` or an iterable of such chunks (e.g. a reader of
                :mod:`vadx.io`).
            fps: its frame rate; by default the video's own ``fps`` attribute where it has one
                (readers of :mod:`vadx.io`, :mod:`vadx.data` videos).
            maps: keep the per-frame localization maps in the result. True: always (they take
                ``T x H x W x 4`` bytes); False: never (frame scores and extras only: memory is
                bounded by the chunk size plus a few bytes per frame); None (default): keep them
                while they take at most :data:`MAX_KEPT_MAP_BYTES` (256 MiB: ~780 frames of
                240x360), else drop all of them, with a warning, as soon as they would
                exceed it, so a long video is scored in bounded memory. :meth:`score_chunks`
                gives every chunk's maps in bounded memory.
        """
        if maps not in (None, True, False):
            raise TypeError(f"maps must be None (keep them up to {MAX_KEPT_MAP_BYTES} bytes), True "
                            f"or False, got {maps!r}")
        out, kept, n = _ScoresBuilder(), 0, 0
        keep = maps is not False
        for s in self.score_chunks(video, fps=fps):
            n += len(s)
            if keep and s.maps is not None:
                kept += s.maps.numel() * s.maps.element_size()
                if maps is None and kept > MAX_KEPT_MAP_BYTES:
                    warnings.warn(f"{self.name}: score() dropped the localization maps after "
                                  f"{n} frames, as they would exceed MAX_KEPT_MAP_BYTES "
                                  f"({MAX_KEPT_MAP_BYTES} bytes); pass maps=True to keep them all "
                                  f"or iterate score_chunks() to use them chunk by chunk",
                                  UserWarning, stacklevel=2)
                    keep = False
                    out.drop_maps()
            out.add(s, keep_maps=keep)
        return out.result()

    def predict(self, video: Any, *, fps: float | None = None) -> Tensor:
        """Boolean ``[T]``: frame score above ``threshold_`` (``fps`` as in :meth:`score`)."""
        return self.score(video, fps=fps, maps=False).frame > self.threshold_

    # ----------------------------------------------------------------- state, device, files
    def _fitted_items(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def to(self, device: str | torch.device) -> Detector:
        """Move fitted tensors and modules to ``device``; returns self."""
        device = torch.device(device)
        for k, v in self._fitted_items().items():
            if isinstance(v, (Tensor, nn.Module)):
                setattr(self, k, v.to(device))
        self.device = device
        return self

    def save(self, path: str | os.PathLike, *, replace_symlink: bool = False) -> None:
        """Write a model file: safetensors tensors + a JSON header (never pickle); see
        :mod:`vadx.model_file`. :func:`vadx.load` reads it back.

        The file is written to a temporary file beside ``path`` and renamed when complete, so
        a failure leaves the previous file (or none); it gets the mode ``open()`` would give it
        (the umask applies; an existing file keeps its mode). A symlink at ``path`` is written
        through, as ``open()`` does: its target is replaced and the link stays. With
        ``replace_symlink=True`` the link itself is replaced by the new file."""
        self._check_fitted()
        model_file.write(path, self.name, type(self)._vadx_plugin_of(), self.get_params(),
                         self._fitted_items(), replace_symlink=replace_symlink, preset=self.preset)

    @classmethod
    def _vadx_plugin_of(cls) -> dict[str, Any] | None:
        """The plugin that registered exactly this class (not a base class), if any."""
        return cls.__dict__.get("_vadx_plugin")

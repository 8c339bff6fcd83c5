"""The detector contract every vadx method implements (PyOD / scikit-learn conventions).

A *video* is uint8 frames ``[T, C, H, W]`` (C = 1 grey or 3 RGB; a torch tensor or a NumPy array)
or an iterable of such chunks, so a long video is scored in bounded memory. The base class owns
everything generic: input validation, chunking, streaming state, the fitted threshold, device
moves and model files. A plugin subclass provides:

- ``name``: the registry name (lower case, e.g. ``"fcn-cascade"``);
- ``__init__(self, *, <params with the paper's defaults>, **kwargs)`` calling
  ``super().__init__(**kwargs)`` and storing each parameter under its own name;
- ``_fit(self, videos, labels)``: learn from the videos (each a re-iterable of validated uint8
  chunks on ``self.device``); store fitted state in attributes ending in ``_`` (tensors,
  ``nn.Module``s or JSON values); return the frame scores of normal training frames for
  ``threshold_``, or None to have the base class score the training videos;
- ``_update(self, state, frames) -> Scores``: score one chunk of a stream, keeping whatever must
  carry over to the next chunk in the dict ``state`` (previous frames, recurrent state); one score
  per input frame;
- optionally ``_build_modules(self)``: create the (untrained) ``nn.Module`` attributes from the
  parameters and fitted JSON values, so that :func:`load` can fill them from a file.

``score()`` runs the same ``_update`` over the chunks of a video, so offline scores equal
streaming scores by construction.
"""

from __future__ import annotations

import inspect
import json
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from vadx.errors import ModelFileError, NotFittedError

MODEL_FORMAT = "vadx.detector"
MODEL_FORMAT_VERSION = 1


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


class VideoChunks:
    """A validated, re-iterable view of one video as chunks of at most ``chunk_size`` frames.

    Iterating a one-shot source (a generator) twice raises instead of silently yielding nothing.
    """

    def __init__(self, video: Any, chunk_size: int, device: torch.device, name: str = "video"):
        if isinstance(video, (Tensor, np.ndarray)):
            video = check_frames(video, name)
        elif isinstance(video, (str, bytes, os.PathLike)):
            raise TypeError(f"{name} must be decoded frames [T, C, H, W] uint8, got the path "
                            f"{os.fspath(video)!r}: read the file into frames first")
        elif not isinstance(video, Iterable):
            raise TypeError(f"{name} must be uint8 frames [T, C, H, W] or an iterable of such "
                            f"chunks, got {type(video).__name__}")
        self.source, self.chunk_size, self.device, self.name = video, chunk_size, device, name
        self.frame_shape: tuple[int, int, int] | None = None  # (C, H, W), known once read
        self._one_shot = not isinstance(video, Tensor) and iter(video) is video
        self._consumed = False

    def __iter__(self) -> Iterator[Tensor]:
        if isinstance(self.source, Tensor):
            self.frame_shape = tuple(self.source.shape[1:])
            for start in range(0, self.source.shape[0], self.chunk_size):
                yield self.source[start:start + self.chunk_size].to(self.device)
            return
        if self._one_shot and self._consumed:
            raise RuntimeError(f"{self.name} is a one-shot iterator that was already consumed; pass "
                               f"a tensor, a list of chunks or a re-iterable reader")
        self._consumed = True
        shape = None
        for i, chunk in enumerate(self.source):
            chunk = check_frames(chunk, f"{self.name} chunk {i}")
            if shape is not None and chunk.shape[1:] != shape:
                raise ValueError(f"{self.name} chunk {i} has frames of shape {tuple(chunk.shape[1:])}; "
                                 f"earlier chunks had {tuple(shape)}")
            shape = chunk.shape[1:]
            self.frame_shape = tuple(shape)
            for start in range(0, chunk.shape[0], self.chunk_size):
                yield chunk[start:start + self.chunk_size].to(self.device)


class Stream:
    """Scores a live video chunk by chunk; ``update`` carries state (e.g. previous frames)."""

    def __init__(self, detector: Detector):
        detector._check_fitted()
        self.detector = detector
        self.reset()

    def reset(self) -> None:
        """Start a new video: forget every frame seen."""
        self.state: dict[str, Any] = {}
        self.frames_seen = 0
        self._shape: tuple[int, ...] | None = None

    def update(self, frames: Any) -> Scores:
        """Score the next chunk of frames ``[t, C, H, W]`` uint8; returns ``t`` scores."""
        frames = check_frames(frames)
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


class Detector:
    """Base class of every vadx detector; see the module docstring for what a subclass provides.

    Args:
        false_alarm_rate: target fraction of normal training frames above ``threshold_``; the
            threshold is the ``1 - false_alarm_rate`` quantile of the normal training scores.
        chunk_size: frames per chunk when a whole video is scored (bounds memory).
    """

    name: ClassVar[str] = ""
    supervised: ClassVar[bool] = False  # True: fit() needs frame labels

    @classmethod
    def demo_params(cls) -> dict[str, Any]:
        """Parameters ``vadx demo`` creates this detector with, so that fitting it on the small
        synthetic scene takes about a minute on a laptop CPU (e.g. fewer epochs; random backbone
        weights unless ``VADX_WEIGHTS_DIR`` is set). The paper's values stay the defaults."""
        return {}

    def __init__(self, *, false_alarm_rate: float = 0.01, chunk_size: int = 64):
        if not 0.0 < false_alarm_rate < 1.0:
            raise ValueError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate!r}")
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
        self.false_alarm_rate = false_alarm_rate
        self.chunk_size = chunk_size
        self.device = torch.device("cpu")
        self.threshold_: float | None = None
        self._fitted = False

    # ----------------------------------------------------------------- for plugin authors
    def _fit(self, videos: list[VideoChunks], labels: list[Tensor] | None) -> Tensor | None:
        raise NotImplementedError(f"{type(self).__name__} must implement _fit(videos, labels)")

    def _update(self, state: dict[str, Any], frames: Tensor) -> Scores:
        raise NotImplementedError(f"{type(self).__name__} must implement _update(state, frames)")

    def _build_modules(self) -> None:
        """Create untrained nn.Module attributes (ending in ``_``) before a load fills them."""

    # ----------------------------------------------------------------- public API
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

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters (keyword-only, as passed to ``vadx.create``)."""
        return {n: getattr(self, n) for n in self.param_names()}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

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
        train_scores = self._fit(chunks, labels)
        self._fitted = True
        # (C, H, W) of the training frames, saved with the model: how to read new video for it.
        shape = next((c.frame_shape for c in chunks if c.frame_shape is not None), None)
        self.input_shape_ = list(shape) if shape is not None else None
        if train_scores is None:
            train_scores = torch.cat([self.score(v).frame for v in chunks])
        self.threshold_ = self._quantile_threshold(train_scores)
        return self

    def _quantile_threshold(self, scores: Tensor) -> float:
        values = torch.as_tensor(scores).detach().double().cpu().numpy().ravel()
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise RuntimeError(f"{type(self).__name__}: no finite training scores to set threshold_")
        return float(np.quantile(values, 1.0 - self.false_alarm_rate))

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError(f"this {type(self).__name__} is not fitted: call fit() or vadx.load()")

    def stream(self) -> Stream:
        """A stream that scores a live video chunk by chunk."""
        return Stream(self)

    def score(self, video: Any) -> Scores:
        """Score every frame of a video (a tensor, array or iterable of chunks)."""
        stream = self.stream()
        chunks = VideoChunks(video, self.chunk_size, self.device)
        return Scores.cat([stream.update(chunk) for chunk in chunks])

    def predict(self, video: Any) -> Tensor:
        """Boolean ``[T]``: frame score above ``threshold_``."""
        return self.score(video).frame > self.threshold_

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

    def save(self, path: str | os.PathLike) -> None:
        """Write a model file: safetensors tensors + a JSON header (never pickle)."""
        from safetensors.torch import save_file

        from vadx import __version__, plugins

        self._check_fitted()
        tensors: dict[str, Tensor] = {}
        fitted: dict[str, Any] = {}
        for k, v in self._fitted_items().items():
            if isinstance(v, Tensor):
                tensors[k] = v
            elif isinstance(v, nn.Module):
                tensors.update({f"{k}.{n}": t for n, t in v.state_dict().items()})
            else:
                fitted[k] = v
        try:
            entry = plugins.detectors().get(self.name)
        except Exception:  # saving must not depend on other plugins being healthy
            entry = None
        header = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "detector": self.name,
            "plugin": None if entry is None or entry.cls is not type(self) else
            {"name": entry.plugin, "distribution": entry.distribution, "version": entry.version},
            "vadx_version": __version__,
            "params": self.get_params(),
            "fitted": fitted,
        }
        try:
            meta = json.dumps(header, allow_nan=True)
        except TypeError as e:
            raise TypeError(f"{type(self).__name__}: parameters and fitted attributes must be "
                            f"tensors, nn.Modules or JSON values to be saved: {e}") from e
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
        save_file(tensors, os.fspath(path), metadata={"vadx": meta})


def read_model_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a vadx model file (no tensors are read)."""
    from safetensors import safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:
        raise ModelFileError(f"{path} is not a readable vadx model file (safetensors): {e}") from e
    if "vadx" not in meta:
        raise ModelFileError(f"{path} is a safetensors file but not a vadx model (no 'vadx' metadata)")
    try:
        header = json.loads(meta["vadx"])
    except ValueError as e:
        raise ModelFileError(f"{path}: corrupted vadx metadata: {e}") from e
    if header.get("format") != MODEL_FORMAT or not isinstance(header.get("detector"), str):
        raise ModelFileError(f"{path}: not a vadx detector file (format={header.get('format')!r})")
    if header.get("format_version", 0) > MODEL_FORMAT_VERSION:
        raise ModelFileError(f"{path} has format version {header['format_version']}; this vadx reads "
                             f"up to {MODEL_FORMAT_VERSION}: upgrade vadx")
    return header


def load(path: str | os.PathLike, device: str | torch.device | None = None) -> Detector:
    """Load a detector saved with :meth:`Detector.save`; its plugin must be installed."""
    from safetensors.torch import load_file

    from vadx import plugins

    header = read_model_header(path)
    saved_by = header.get("plugin") or {}
    try:
        entry = plugins.get_detector(header["detector"])
    except LookupError as e:
        raise ModelFileError(
            f"{os.fspath(path)} holds a {header['detector']!r} detector (plugin "
            f"{saved_by.get('distribution') or '?'} {saved_by.get('version') or '?'}), which is not "
            f"installed: {e}") from e
    if saved_by.get("version") and entry.version and saved_by["version"] != entry.version:
        warnings.warn(f"{os.fspath(path)} was saved by {entry.distribution} {saved_by['version']}; "
                      f"{entry.version} is installed", stacklevel=2)
    try:
        tensors = load_file(os.fspath(path))
    except Exception as e:
        raise ModelFileError(f"{os.fspath(path)}: corrupted tensor data: {e}") from e
    det = entry.cls(**header["params"])
    for k, v in header["fitted"].items():
        setattr(det, k, v)
    det._build_modules()
    modules: dict[str, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        attr, _, sub = key.partition(".")
        if sub:
            modules.setdefault(attr, {})[sub] = value
        else:
            setattr(det, attr, value)
    for attr, state in modules.items():
        module = getattr(det, attr, None)
        if not isinstance(module, nn.Module):
            raise ModelFileError(f"{os.fspath(path)}: {type(det).__name__}._build_modules() must "
                                 f"create the module {attr!r} to load it")
        module.load_state_dict(state, strict=True)
    det._fitted = True
    return det.to(device) if device is not None else det

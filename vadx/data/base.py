"""Dataset, Video and Masks: lazily read benchmark data."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vadx.data.labels import as_labels
from vadx.io.readers import VideoReader, VideoReadError, check_chunk_size, check_size, natural_key


class DatasetError(ValueError):
    """A dataset root does not have the expected layout, or its files disagree."""


def layout_error(dataset: str, root: Path, expected: Sequence[str], problem: str = "") -> DatasetError:
    """An error saying which layout was expected under ``root`` and what is there instead."""
    try:
        entries = sorted((p.name + ("/" if p.is_dir() else "") for p in root.iterdir()), key=natural_key)
    except OSError:
        entries = []
    found = ", ".join(entries[:12]) + (f", ... ({len(entries)} entries)" if len(entries) > 12 else "")
    lines = "\n".join(f"  {e}" for e in expected)
    return DatasetError(f"{root} does not hold the {dataset} dataset{': ' + problem if problem else ''}.\n"
                        f"Expected (relative to the root):\n{lines}\n"
                        f"Found in {root}: {found or '(nothing)'}")


def subdirs(folder: Path, pattern: str | None = None) -> list[Path]:
    """Non-hidden subfolders (whose names fully match the regex ``pattern``), naturally sorted."""
    if not folder.is_dir():
        return []
    out = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
           and (pattern is None or re.fullmatch(pattern, p.name))]
    return sorted(out, key=lambda p: natural_key(p.name))


class Masks:
    """Pixel ground truth of one video, loaded lazily: ``read()`` gives bool ``[t, H, W]``.

    Sources: image files (one per frame; any pixel > 0 is anomalous, so 0/1 and 0/255 masks
    both work), an array ``[T, H, W]``, or a zero-argument function returning one (called at
    each read: the mask volume is not kept in memory between reads). ``size=(H, W)`` resizes
    masks with nearest-neighbour interpolation, to match frames read with the same ``size``.
    """

    def __init__(self, source: Sequence[str | os.PathLike] | np.ndarray | Callable[[], Any], *,
                 size: tuple[int, int] | None = None, chunk_size: int = 64,
                 n_frames: int | None = None):
        self.size = check_size(size)
        self.chunk_size = check_chunk_size(chunk_size)
        self.files: list[Path] | None = None
        self._array: np.ndarray | None = None
        self._loader: Callable[[], Any] | None = None
        if callable(source):
            if n_frames is None:
                raise ValueError("n_frames is required with a mask loader function")
            self._loader = source
        elif isinstance(source, np.ndarray):
            if source.ndim != 3:
                raise ValueError(f"masks must be [T, H, W], got shape {source.shape}")
            self._array = source
        else:
            self.files = [Path(f) for f in source]
        self._n = n_frames if n_frames is not None else (
            len(self.files) if self.files is not None else self._array.shape[0])

    def __len__(self) -> int:
        return self._n

    def _volume(self) -> np.ndarray:
        if self._array is not None:
            return self._array
        vol = np.asarray(self._loader())
        if vol.ndim != 3 or vol.shape[0] != self._n:
            raise DatasetError(f"mask loader returned shape {vol.shape}; expected [{self._n}, H, W]")
        return vol

    def _image(self, path: Path) -> np.ndarray:
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if img is None:
            if not path.is_file():
                raise FileNotFoundError(f"mask file not found: {path}")
            raise VideoReadError(f"{path}: cannot decode this mask image (corrupt or unsupported)")
        return img

    def _finish(self, masks: list[np.ndarray]) -> np.ndarray:
        """Binarise (and resize) loaded masks into bool ``[t, H, W]``."""
        out = []
        for m in masks:
            m = np.asarray(m) > 0
            if self.size is not None and m.shape != self.size:
                m = cv2.resize(m.astype(np.uint8), (self.size[1], self.size[0]),
                               interpolation=cv2.INTER_NEAREST) > 0
            out.append(m)
        return np.stack(out) if out else np.zeros((0, *(self.size or (0, 0))), bool)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Masks of frames ``start`` to ``stop - 1`` as bool ``[t, H, W]``."""
        if self.files is not None:
            return self._finish([self._image(p) for p in self.files[start:stop]])
        return self._finish(list(self._volume()[start:stop]))

    def __iter__(self) -> Iterator[np.ndarray]:
        """Bool ``[t, H, W]`` chunks of ``chunk_size`` masks (a loader is called once per pass)."""
        vol = None if self.files is not None else self._volume()
        for a in range(0, self._n, self.chunk_size):
            b = a + self.chunk_size
            if vol is None:
                yield self._finish([self._image(p) for p in self.files[a:b]])
            else:
                yield self._finish(list(vol[a:b]))

    def frame_labels(self) -> np.ndarray:
        """uint8 ``[T]``: 1 where a frame's mask has any anomalous pixel."""
        if not self._n:
            return np.zeros(0, np.uint8)
        return np.concatenate([m.reshape(len(m), -1).any(1) for m in self]).astype(np.uint8)


class Video:
    """One video of a dataset: a re-iterable reader plus its ground truth.

    Iterating a Video yields the reader's uint8 ``[t, C, H, W]`` chunks, so it can be passed
    directly to ``Detector.fit`` / ``Detector.score``.

    Attributes:
        name: the video's name in its dataset (e.g. ``"Test001"``, ``"01"``).
        reader: the :class:`vadx.io.VideoReader` of its frames.
        labels: uint8 frame labels ``[T]`` (1 = anomalous), or None (training videos: normal by
            the dataset's definition; UCF-Crime's weakly labelled training videos). Loaded on
            first access where the source is a file.
        masks: :class:`Masks` (pixel ground truth), or None where the dataset has none.
        video_label: 1/0 whether the video contains an anomaly, where the dataset says so
            without frame labels (UCF-Crime training); else None.
        meta: extra facts (e.g. the synthetic anomaly's kind and onset).
    """

    def __init__(self, name: str, reader: VideoReader, labels: Any = None, masks: Masks | None = None,
                 video_label: int | None = None, meta: dict[str, Any] | None = None):
        self.name, self.reader, self.masks = name, reader, masks
        self.video_label = video_label
        self.meta = meta or {}
        self._labels = labels if labels is None or callable(labels) else \
            as_labels(labels, f"labels of video {name}", n_frames=len(reader))

    @property
    def labels(self) -> np.ndarray | None:
        if callable(self._labels):
            self._labels = as_labels(self._labels(), f"labels of video {self.name}",
                                     n_frames=len(self.reader))
        return self._labels

    @property
    def fps(self) -> float | None:
        return self.reader.fps

    def __iter__(self):
        return iter(self.reader)

    def __len__(self) -> int:
        return len(self.reader)

    def read(self, start: int = 0, stop: int | None = None):
        """Frames ``start`` to ``stop - 1`` as one uint8 tensor ``[t, C, H, W]``."""
        return self.reader.read(start, stop)

    def __repr__(self) -> str:
        gt = "masks" if self.masks is not None else ("labels" if self._labels is not None else "no labels")
        return f"Video({self.name!r}, {self.reader.name!r}, {gt})"


@dataclass
class Dataset:
    """Training videos (normal) and test videos with ground truth.

    Attributes:
        name: the dataset name passed to :func:`vadx.data.load`.
        train: training videos (normal only, except UCF-Crime with ``train="all"``).
        test: test videos, each with ``labels`` and, where the dataset has them, ``masks``.
        root: the dataset folder (None for generated data).
        layout: which on-disk layout was found (e.g. ``"official"``, ``"frames"``).
        options: the loading options (reader options and dataset-specific ones).
    """

    name: str
    train: list[Video]
    test: list[Video]
    root: Path | None = None
    layout: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def has_masks(self) -> bool:
        """Whether any test video has pixel ground truth."""
        return any(v.masks is not None for v in self.test)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, layout={self.layout!r}, {len(self.train)} train / "
                f"{len(self.test)} test videos{', pixel masks' if self.has_masks else ''}, "
                f"root={str(self.root) if self.root else None!r})")

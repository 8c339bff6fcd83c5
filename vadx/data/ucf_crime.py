"""UCF-Crime (Sultani, Chen, Shah, CVPR 2018): long untrimmed surveillance videos.

The videos may lie anywhere under the root (the release splits them over several folders);
they are found by file name. Two text files of the release are needed (also found anywhere
under the root, or passed explicitly):

- ``Temporal_Anomaly_Annotation_for_Testing_Videos.txt``: the test set, one line per video,
  ``<file> <class> <start1> <end1> <start2> <end2>`` with -1 for an absent event. Frames
  ``start..end-1`` (0-based) are labelled anomalous, the reading of most public evaluation code
  (``gt[start:end] = 1``).
- ``Anomaly_Train.txt``: the training set, one relative path per line; videos whose name starts
  with ``Normal`` are normal, the others contain an anomaly somewhere (video-level label only).

Frame labels need the frame count, which comes from the container (see
:class:`vadx.io.FileReader`), so they are built when first used.
"""

from __future__ import annotations

import os
import warnings
from functools import partial
from pathlib import Path

import numpy as np

from vadx.data.base import Dataset, DatasetError, Video, layout_error
from vadx.io.readers import VIDEO_EXTENSIONS, FileReader

ANNOTATION = "Temporal_Anomaly_Annotation_for_Testing_Videos.txt"
TRAIN_LIST = "Anomaly_Train.txt"
EXPECTED = [
    f"{ANNOTATION}  (anywhere under the root, or annotation=<path>)",
    f"{TRAIN_LIST}  (anywhere under the root, or train_list=<path>)",
    "the videos they name (e.g. Abuse/Abuse028_x264.mp4), anywhere under the root",
]


def read_annotations(path: str | os.PathLike) -> dict[str, tuple[str, list[tuple[int, int]]]]:
    """``{file name: (class, [(start, end), ...])}`` from the temporal annotation file."""
    path = Path(path)
    out: dict[str, tuple[str, list[tuple[int, int]]]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) < 2 or (len(parts) - 2) % 2:
                raise ValueError
            bounds = [int(v) for v in parts[2:]]
        except ValueError:
            raise DatasetError(f"{path}:{n}: expected '<file> <class> <start> <end> [<start> <end>]', "
                               f"got {line!r}") from None
        events = [(s, e) for s, e in zip(bounds[::2], bounds[1::2]) if s != -1]
        for s, e in events:
            if not 0 <= s < e:
                raise DatasetError(f"{path}:{n}: event ({s}, {e}) must have 0 <= start < end")
        out[Path(parts[0]).name] = (parts[1], events)
    return out


def _labels(reader: FileReader, events: list[tuple[int, int]]) -> np.ndarray:
    n = len(reader)
    labels = np.zeros(n, np.uint8)
    for s, e in events:
        if e > n:
            warnings.warn(f"{reader.path}: annotated event {s}..{e} ends after the video's {n} "
                          f"frames; clipped", stacklevel=3)
        labels[s:e] = 1
    return labels


def _find(root: Path, given: str | os.PathLike | None, pattern: str, what: str) -> Path:
    if given is not None:
        path = Path(given)
        if not path.is_file():
            raise FileNotFoundError(f"{what}: file not found: {given}")
        return path
    found = sorted(root.rglob(pattern))
    if not found:
        raise layout_error("ucf-crime", root, EXPECTED, f"no {pattern} under the root")
    return found[0]


def load_ucf_crime(root: str | os.PathLike, *, annotation: str | os.PathLike | None = None,
                   train_list: str | os.PathLike | None = None, train: str = "normal",
                   chunk_size: int = 64, grayscale: bool | None = None,
                   size: tuple[int, int] | None = None, fps: float | None = None) -> Dataset:
    """Load UCF-Crime (module docstring).

    Args:
        root: the dataset folder.
        annotation: the temporal annotation file, if not under the root.
        train_list: ``Anomaly_Train.txt``, if not under the root.
        train: ``"normal"`` (the normal training videos, for normal-only detectors) or ``"all"``
            (also the anomalous ones, with ``video_label = 1`` and no frame labels, for weakly
            supervised detectors).
        chunk_size, grayscale, size, fps: reader options (:func:`vadx.io.open_video`).
    """
    if train not in ("normal", "all"):
        raise ValueError(f"train must be 'normal' or 'all', got {train!r}")
    root = Path(root)
    ann_file = _find(root, annotation, "Temporal_Anomaly_Annotation*.txt", "annotation")
    list_file = _find(root, train_list, TRAIN_LIST, "train_list")
    files: dict[str, Path] = {}
    for p in root.rglob("*"):
        if p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith("."):
            if p.name in files:
                raise DatasetError(f"two videos named {p.name}: {files[p.name]} and {p}")
            files[p.name] = p
    opts = dict(chunk_size=chunk_size, grayscale=grayscale, size=size, fps=fps)

    def video_path(name: str, source: Path) -> Path:
        if name not in files:
            raise DatasetError(f"{source} lists {name}, which is not under {root}")
        return files[name]

    test = []
    for name, (cls, events) in read_annotations(ann_file).items():
        reader = FileReader(video_path(name, ann_file), **opts)
        test.append(Video(Path(name).stem, reader, partial(_labels, reader, events),
                          video_label=int(cls.lower() != "normal"), meta={"class": cls}))
    train_videos = []
    for line in list_file.read_text().splitlines():
        name = Path(line.strip()).name
        if not name:
            continue
        normal = name.lower().startswith("normal")
        if train == "normal" and not normal:
            continue
        train_videos.append(Video(Path(name).stem, FileReader(video_path(name, list_file), **opts),
                                  video_label=0 if normal else 1))
    if not train_videos:
        raise DatasetError(f"{list_file} lists no {'normal ' if train == 'normal' else ''}training videos")
    return Dataset("ucf-crime", train_videos, test, root, "official",
                   {**opts, "train": train, "annotation": str(ann_file), "train_list": str(list_file)})

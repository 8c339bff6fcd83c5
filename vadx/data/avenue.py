"""CUHK Avenue (Lu, Shi, Jia, ICCV 2013).

Official layout::

    <root>/training_videos/01.avi ... 16.avi
    <root>/testing_videos/01.avi ... 21.avi
    <root>/testing_label_mask/1_label.mat ...      (or ground_truth_demo/testing_label_mask/)

Each ``<n>_label.mat`` holds ``volLabel``, a cell with one mask (H x W, nonzero = anomalous) per
frame of test video ``n``; a frame is anomalous iff its mask is non-empty. The frames-folder
layout (``training/frames/01/0000.jpg`` + ``avenue.mat``) is detected too (vadx.data.frames).
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np

from vadx.data.base import Dataset, DatasetError, Masks, Video, layout_error
from vadx.data.frames import EXPECTED as FRAMES_EXPECTED
from vadx.data.frames import is_frames_layout, load_frames
from vadx.data.labels import read_mat_cells
from vadx.io.readers import VIDEO_EXTENSIONS, FileReader, natural_key

EXPECTED = [
    "training_videos/01.avi ...",
    "testing_videos/01.avi ...",
    "testing_label_mask/1_label.mat ...  (or ground_truth_demo/testing_label_mask/)",
    "or the frames-folder layout:",
    *(f"  {e}" for e in FRAMES_EXPECTED),
]


def _videos(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS
                   and not p.name.startswith(".")), key=lambda p: natural_key(p.name))


def read_vol_label(path: Path) -> np.ndarray:
    """bool ``[T, H, W]`` from an Avenue ``<n>_label.mat`` (variable ``volLabel``)."""
    frames = read_mat_cells(path, "volLabel", "one mask per frame", DatasetError)
    return np.stack([np.asarray(m) > 0 for m in frames])


def _frame_labels(path: Path) -> np.ndarray:
    return read_vol_label(path).any(axis=(1, 2)).astype(np.uint8)


def load_avenue(root: str | os.PathLike, *, labels: str | os.PathLike | None = None,
                chunk_size: int = 64, grayscale: bool | None = None,
                size: tuple[int, int] | None = None, fps: float | None = None) -> Dataset:
    """Load CUHK Avenue (module docstring).

    Args:
        root: the dataset folder.
        labels: official layout: the folder of ``<n>_label.mat`` files, if not found under the
            root; frames-folder layout: the frame-label file.
        chunk_size, grayscale, size, fps: reader options (:func:`vadx.io.open_video`).
    """
    root = Path(root)
    if is_frames_layout(root):
        return load_frames(root, labels=labels, name="avenue", chunk_size=chunk_size,
                           grayscale=grayscale, size=size, fps=fps)
    train_files, test_files = _videos(root / "training_videos"), _videos(root / "testing_videos")
    if not train_files or not test_files:
        raise layout_error("avenue", root, EXPECTED)
    candidates = [Path(labels)] if labels is not None else \
        [root / "testing_label_mask", root / "ground_truth_demo" / "testing_label_mask"]
    label_dir = next((d for d in candidates if d.is_dir()), None)
    if label_dir is None:
        raise layout_error("avenue", root, EXPECTED, f"no label folder ({', '.join(map(str, candidates))})")
    opts = dict(chunk_size=chunk_size, grayscale=grayscale, size=size, fps=fps)
    train = [Video(p.stem, FileReader(p, **opts)) for p in train_files]
    test = []
    for p in test_files:
        names = [f"{int(p.stem)}_label.mat"] if p.stem.isdigit() else []
        names.append(f"{p.stem}_label.mat")
        mat = next((label_dir / n for n in names if (label_dir / n).is_file()), None)
        if mat is None:
            raise DatasetError(f"{label_dir}: no {names[0]} for the test video {p}")
        reader = FileReader(p, **opts)

        masks = Masks(partial(read_vol_label, mat), size=size, chunk_size=chunk_size,
                      n_frames=len(reader))
        test.append(Video(p.stem, reader, partial(_frame_labels, mat), masks))
    return Dataset("avenue", train, test, root, "official", {**opts, "labels": str(label_dir)})

"""ShanghaiTech Campus (Luo, Liu, Gao, ICCV 2017).

Layout of the release::

    <root>/training/videos/01_001.avi ...                  normal training videos
           (or training/frames/01_001/000.jpg ... where frames were extracted)
    <root>/testing/frames/01_0014/000.jpg ...              test videos as frames
    <root>/testing/test_frame_mask/01_0014.npy             frame labels [T] (0/1)
    <root>/testing/test_pixel_mask/01_0014.npy             optional pixel masks [T, H, W]
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np

from vadx.data.base import Dataset, DatasetError, Masks, Video, layout_error, subdirs
from vadx.io.readers import VIDEO_EXTENSIONS, FileReader, FolderReader, natural_key

EXPECTED = [
    "training/videos/01_001.avi ...  (or training/frames/01_001/000.jpg ...)",
    "testing/frames/01_0014/000.jpg ...",
    "testing/test_frame_mask/01_0014.npy ...",
    "optional: testing/test_pixel_mask/01_0014.npy ...",
]


def _npy(path: Path, mmap: bool = False) -> np.ndarray:
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def load_shanghaitech(root: str | os.PathLike, *, chunk_size: int = 64,
                      grayscale: bool | None = None, size: tuple[int, int] | None = None,
                      fps: float | None = None) -> Dataset:
    """Load ShanghaiTech Campus (module docstring); reader options as :func:`vadx.io.open_video`.

    Pixel masks are memory-mapped from their ``.npy`` files, so only the frames read are loaded.
    """
    root = Path(root)
    opts = dict(chunk_size=chunk_size, grayscale=grayscale, size=size, fps=fps)
    video_dir, frames_dir = root / "training" / "videos", root / "training" / "frames"
    train_files = sorted((p for p in video_dir.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS
                          and not p.name.startswith(".")),
                         key=lambda p: natural_key(p.name)) if video_dir.is_dir() else []
    if train_files:
        train = [Video(p.stem, FileReader(p, **opts)) for p in train_files]
    else:
        train = [Video(d.name, FolderReader(d, **opts)) for d in subdirs(frames_dir)]
    test_dirs = subdirs(root / "testing" / "frames")
    label_dir = root / "testing" / "test_frame_mask"
    if not train or not test_dirs or not label_dir.is_dir():
        raise layout_error("shanghaitech", root, EXPECTED)
    pixel_dir = root / "testing" / "test_pixel_mask"
    test = []
    for d in test_dirs:
        label_file = label_dir / f"{d.name}.npy"
        if not label_file.is_file():
            raise DatasetError(f"{label_dir}: no {label_file.name} for the test video {d}")
        reader = FolderReader(d, **opts)
        pixel_file = pixel_dir / f"{d.name}.npy"
        masks = Masks(partial(_npy, pixel_file, True), size=size, chunk_size=chunk_size,
                      n_frames=len(reader)) if pixel_file.is_file() else None
        test.append(Video(d.name, reader, partial(_npy, label_file), masks))
    return Dataset("shanghaitech", train, test, root, "official", opts)

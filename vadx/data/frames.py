"""The frames-folder layout used by many public VAD codebases (UCSD Ped1/Ped2, Avenue, ...).

::

    <root>/training/frames/<video>/<frame>.jpg     normal training videos (jpg, png, tif or bmp)
    <root>/testing/frames/<video>/<frame>.jpg      test videos
    <root>/<labels>.m | .mat | .npy                frame labels of the test videos, in folder order
                                                   (or in testing/; see vadx.data.labels)
    <root>/testing/masks/<video>/<frame>.png       optional pixel ground truth, one image per frame

Videos and frames are ordered by natural sort (``2`` before ``10``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vadx.data.base import Dataset, DatasetError, Masks, Video, layout_error, subdirs
from vadx.data.labels import LABEL_EXTENSIONS, read_label_file
from vadx.io.readers import FolderReader, list_frames

EXPECTED = [
    "training/frames/<video>/<frame>.jpg  (or .png, .tif, .bmp)",
    "testing/frames/<video>/<frame>.jpg",
    "a frame-label file (.m, .mat or .npy) in the root or testing/, or labels=<path>",
    "optional: testing/masks/<video>/<frame>.png",
]


def is_frames_layout(root: Path) -> bool:
    """Whether ``root`` has ``training/frames`` and ``testing/frames`` folders."""
    return (root / "training" / "frames").is_dir() and (root / "testing" / "frames").is_dir()


def find_label_file(root: Path, dataset: str, folders: list[Path], given: Any = None) -> Path:
    """The label file: ``given`` (a path, relative to the root if not found as is), or the only
    .m/.mat/.npy file in ``folders``."""
    if given is not None:
        path = Path(given)
        if not path.is_file() and (root / path).is_file():
            path = root / path
        if not path.is_file():
            raise FileNotFoundError(f"labels: label file not found: {given}")
        return path
    found = sorted({p for f in folders if f.is_dir() for p in f.iterdir()
                    if p.is_file() and p.suffix.lower() in LABEL_EXTENSIONS and not p.name.startswith(".")})
    if not found:
        raise layout_error(dataset, root, EXPECTED, "no frame-label file found")
    if len(found) > 1:
        raise DatasetError(f"{root}: several label files found ({', '.join(str(p) for p in found)}); "
                           f"choose one with labels=<path>")
    return found[0]


def load_frames(root: str | os.PathLike, *, labels: str | os.PathLike | None = None,
                name: str = "frames", chunk_size: int = 64, grayscale: bool | None = None,
                size: tuple[int, int] | None = None, fps: float | None = None) -> Dataset:
    """Load a dataset in the frames-folder layout (module docstring).

    Args:
        root: the dataset folder.
        labels: the frame-label file; None finds the only .m/.mat/.npy file in the root or
            ``testing/``.
        name: the dataset name to record (``load("ucsd-ped2", ...)`` passes its own).
        chunk_size, grayscale, size, fps: reader options (:func:`vadx.io.open_video`).
    """
    root = Path(root)
    if not is_frames_layout(root):
        raise layout_error(name, root, EXPECTED, "training/frames and testing/frames are required")
    opts = dict(chunk_size=chunk_size, grayscale=grayscale, size=size, fps=fps)
    train_dirs = subdirs(root / "training" / "frames")
    test_dirs = subdirs(root / "testing" / "frames")
    if not train_dirs or not test_dirs:
        which = "training/frames" if not train_dirs else "testing/frames"
        raise layout_error(name, root, EXPECTED, f"{which} has no video folders")
    train = [Video(d.name, FolderReader(d, **opts)) for d in train_dirs]
    readers = [FolderReader(d, **opts) for d in test_dirs]
    label_file = find_label_file(root, name, [root, root / "testing"], labels)
    all_labels = read_label_file(label_file, [len(r) for r in readers], [d.name for d in test_dirs])
    test = []
    for d, reader, lab in zip(test_dirs, readers, all_labels):
        masks = None
        mask_dir = root / "testing" / "masks" / d.name
        if mask_dir.is_dir():
            files = list_frames(mask_dir)
            if len(files) != len(reader):
                raise DatasetError(f"{mask_dir} has {len(files)} masks for the {len(reader)} frames "
                                   f"of {d}")
            masks = Masks(files, size=size, chunk_size=chunk_size)
        test.append(Video(d.name, reader, lab, masks))
    return Dataset(name, train, test, root, "frames", {**opts, "labels": str(label_file)})

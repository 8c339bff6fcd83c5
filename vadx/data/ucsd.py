"""UCSD Anomaly Detection Dataset (Mahadevan et al., CVPR 2010): Ped1 and Ped2.

Two on-disk layouts are detected:

- official (v1p2 release)::

      UCSDped2/Train/Train001/001.tif ...             normal training videos (8-bit grey TIFF)
      UCSDped2/Test/Test001/001.tif ...               test videos
      UCSDped2/Test/Test001_gt/001.bmp ...            pixel masks (all of Ped2's, 10 of Ped1's 36)
      UCSDped2/Test/UCSDped2.m                        frame labels (vadx.data.labels)

  ``root`` may be the folder that holds ``UCSDped2`` or ``UCSDped2`` itself, and the ``Train``/
  ``Test`` level may be missing (``UCSDped2/Train001``, ``UCSDped2/Test001``, ...). Without the
  ``.m`` file, frame labels come from the masks when every test video has them.
- frames-folder (:mod:`vadx.data.frames`), e.g. ``training/frames/01/000.jpg`` + ``UCSDped2.m``.

UCSD video is greyscale, so frames are read with ``grayscale=True`` by default: both layouts then
give ``[t, 1, H, W]`` (the frames-folder JPEGs store three equal channels).
"""

from __future__ import annotations

import os
from pathlib import Path

from vadx.data.base import Dataset, DatasetError, Masks, Video, layout_error, subdirs
from vadx.data.frames import find_label_file, is_frames_layout, load_frames
from vadx.data.frames import EXPECTED as FRAMES_EXPECTED
from vadx.data.labels import read_label_file
from vadx.io.readers import FolderReader, list_frames

VARIANTS = ("ped1", "ped2")


def _official_dirs(root: Path, folder: str) -> tuple[Path, Path] | None:
    """(train_dir, test_dir) of the official layout under root, if it is there."""
    for d in (root, root / folder):
        train = d / "Train" if (d / "Train").is_dir() else d
        test = d / "Test" if (d / "Test").is_dir() else d
        if subdirs(train, r"Train\d+") and subdirs(test, r"Test\d+"):
            return train, test
    return None


UCSD_FPS = 10.0  # UCSD Ped1/Ped2 were recorded at 10 frames/s


def load_ucsd(root: str | os.PathLike, *, variant: str = "ped2",
              labels: str | os.PathLike | None = None, chunk_size: int = 64,
              grayscale: bool | None = True, size: tuple[int, int] | None = None,
              fps: float | None = None) -> Dataset:
    """Load UCSD Ped1 or Ped2 in the official or the frames-folder layout (module docstring).

    Args:
        root: the dataset folder.
        variant: ``"ped1"`` or ``"ped2"``.
        labels: a frame-label file (.m, .mat, .npy) overriding the one found.
        chunk_size, grayscale, size, fps: reader options (:func:`vadx.io.open_video`); ``fps``
            defaults to the UCSD recordings' 10 frames/s (frames folders carry no rate).
    """
    fps = UCSD_FPS if fps is None else fps
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    name, folder = f"ucsd-{variant}", f"UCSD{variant}"
    root = Path(root)
    if is_frames_layout(root):
        return load_frames(root, labels=labels, name=name, chunk_size=chunk_size,
                           grayscale=grayscale, size=size, fps=fps)
    dirs = _official_dirs(root, folder)
    if dirs is None:
        raise layout_error(name, root, [
            f"{folder}/Train/Train001/001.tif  (official layout; {folder}/ and Train/ may be omitted)",
            f"{folder}/Test/Test001/001.tif, {folder}/Test/Test001_gt/001.bmp, {folder}/Test/{folder}.m",
            "or the frames-folder layout:",
            *(f"  {e}" for e in FRAMES_EXPECTED)])
    train_dir, test_dir = dirs
    opts = dict(chunk_size=chunk_size, grayscale=grayscale, size=size, fps=fps)
    train = [Video(d.name, FolderReader(d, **opts)) for d in subdirs(train_dir, r"Train\d+")]
    test_dirs = subdirs(test_dir, r"Test\d+")
    readers = [FolderReader(d, **opts) for d in test_dirs]
    masks: list[Masks | None] = []
    for d, reader in zip(test_dirs, readers):
        gt = d.with_name(d.name + "_gt")
        if not gt.is_dir():
            masks.append(None)
            continue
        files = list_frames(gt)
        if len(files) != len(reader):
            raise DatasetError(f"{gt} has {len(files)} masks for the {len(reader)} frames of {d}")
        masks.append(Masks(files, size=size, chunk_size=chunk_size))

    label_dirs = {test_dir, test_dir.parent, root}
    m_files = sorted(p for d in label_dirs if d.is_dir() for p in d.iterdir()
                     if p.is_file() and p.suffix.lower() == ".m" and not p.name.startswith("."))
    named = [p for p in m_files if p.stem.lower() == folder.lower()]
    if len(m_files) > 1 and not named and labels is None:
        raise DatasetError(f"{root}: several .m files ({', '.join(map(str, m_files))}) and none is "
                           f"{folder}.m; choose one with labels=<path>")
    if labels is not None or m_files:
        label_file = find_label_file(root, name, [], labels) if labels is not None else \
            (named or m_files)[0]
        frame_labels = read_label_file(label_file, [len(r) for r in readers],
                                       [d.name for d in test_dirs])
        label_source = str(label_file)
    elif all(m is not None for m in masks):
        # labels derived from the masks, lazily: a frame is anomalous iff its mask is non-empty
        frame_labels = [m.frame_labels for m in masks]
        label_source = "masks"
    else:
        have = sum(m is not None for m in masks)
        raise DatasetError(f"{root}: no frame labels for {name}: expected {test_dir / (folder + '.m')} "
                           f"(or labels=<path>); the masks cannot stand in, as only {have} of "
                           f"{len(masks)} test videos have a _gt folder")
    test = [Video(d.name, r, lab, m) for d, r, lab, m in zip(test_dirs, readers, frame_labels, masks)]
    return Dataset(name, train, test, root, "official", {**opts, "labels": label_source})

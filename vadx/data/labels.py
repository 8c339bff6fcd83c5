"""Frame-level ground truth: the benchmarks' label file formats and conversions.

Labels are NumPy uint8 arrays ``[T]`` with 1 = anomalous frame. Formats read here:

- ``.m`` (UCSD's official ``UCSDped1.m``/``UCSDped2.m``): one ``gt_frame = [...]`` entry per test
  video, in video order; entries hold 1-based inclusive ranges ``a:b`` (``a:s:b`` with a step) or
  single frame numbers, separated by commas or spaces; ``%`` starts a comment.
- ``.mat`` with a variable ``gt`` (the convention of the frames-folder releases, e.g. ``ped2.mat``,
  ``avenue.mat``): a cell with one ``2 x K`` matrix per test video, columns = 1-based inclusive
  ``(start, end)`` ranges.
- ``.npy`` (e.g. ``frame_labels_ped2.npy``): the 0/1 labels of all test frames concatenated in
  video order (any shape, read flat). Object arrays are refused: loading them runs pickle.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

LABEL_EXTENSIONS = (".m", ".mat", ".npy")


def as_labels(labels: Any, what: str = "labels", n_frames: int | None = None) -> np.ndarray:
    """Validate frame labels: 1-D, values 0/1 (bool accepted) -> uint8 ``[T]``."""
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D frame labels [T], got shape {arr.shape}")
    if arr.size and not np.isin(arr, (0, 1)).all():
        bad = np.unique(arr[~np.isin(arr, (0, 1))])[:5]
        raise ValueError(f"{what} must hold 0 (normal) and 1 (anomalous) only, got values {bad.tolist()}")
    if n_frames is not None and arr.shape[0] != n_frames:
        raise ValueError(f"{what} has {arr.shape[0]} labels for a video of {n_frames} frames")
    return arr.astype(np.uint8)


def label_intervals(labels: Any, n_frames: int | None = None) -> list[tuple[int, int]]:
    """The anomalous runs of frame labels as 0-based half-open ``(start, stop)`` pairs."""
    arr = as_labels(labels, n_frames=n_frames).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], arr, [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def frames_to_labels(frames: Any, n_frames: int, *, one_based: bool = True,
                     what: str = "anomalous frames") -> np.ndarray:
    """uint8 labels ``[n_frames]`` with 1 at the given frame numbers."""
    idx = np.asarray(frames, dtype=np.int64).ravel() - (1 if one_based else 0)
    if idx.size and (idx.min() < 0 or idx.max() >= n_frames):
        first = 1 if one_based else 0
        raise ValueError(f"{what} must be frame numbers in {first}..{n_frames - 1 + first} for a "
                         f"video of {n_frames} frames, got {idx.min() + first}..{idx.max() + first}")
    labels = np.zeros(n_frames, np.uint8)
    labels[idx] = 1
    return labels


def parse_m_file(path: str | os.PathLike) -> list[np.ndarray]:
    """The 1-based anomalous frame numbers of each ``gt_frame`` entry of a UCSD ``.m`` file."""
    path = Path(path)
    text = re.sub(r"%[^\n]*", "", path.read_text(errors="replace"))
    entries = re.findall(r"gt_frame\s*=\s*\[([^\]]*)\]", text)
    if not entries:
        raise ValueError(f"{path}: no 'gt_frame = [...]' entries: not a UCSD ground-truth .m file")
    out = []
    for k, body in enumerate(entries):
        frames: list[int] = []
        for token in re.split(r"[\s,;]+", body.strip()):
            if not token:
                continue
            try:
                parts = [int(p) for p in token.split(":")]
            except ValueError:
                raise ValueError(f"{path}: entry {k + 1} has {token!r}; expected a:b, a:s:b or a "
                                 f"frame number") from None
            if len(parts) == 1:
                frames.append(parts[0])
            elif len(parts) == 2:
                frames.extend(range(parts[0], parts[1] + 1))
            elif len(parts) == 3 and parts[1] != 0:
                frames.extend(range(parts[0], parts[2] + (1 if parts[1] > 0 else -1), parts[1]))
            else:
                raise ValueError(f"{path}: entry {k + 1} has {token!r}; expected a:b, a:s:b or a "
                                 f"frame number")
        out.append(np.asarray(frames, dtype=np.int64))
    return out


def read_mat_cells(path: Path, var: str, what: str, error: type[Exception] = ValueError) -> list:
    """The entries of the MATLAB variable ``var`` of a .mat file: a cell array loads as an object
    array (one entry per cell), a plain matrix as a single entry. ``what`` describes the variable
    in the error raised (as ``error``) when the file is unreadable or lacks it."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path), squeeze_me=True)
    except Exception as e:
        raise error(f"{path}: not a readable MATLAB .mat file: {e}") from e
    if var not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise error(f"{path}: expected a variable {var!r} ({what}), found {keys}")
    value = mat[var]
    return list(np.atleast_1d(value).ravel()) if value.dtype == object else [value]


def _mat_ranges(path: Path) -> list[np.ndarray]:
    entries = read_mat_cells(path, "gt", "a cell of 2 x K frame ranges per test video")
    out = []
    for k, e in enumerate(entries):
        e = np.asarray(e, dtype=np.int64)
        if e.size % 2:
            raise ValueError(f"{path}: gt entry {k + 1} has shape {e.shape}; expected 2 x K "
                             f"(start; end) frame ranges")
        ranges = e.reshape(2, -1)
        out.append(np.concatenate([np.arange(a, b + 1) for a, b in ranges.T])
                   if ranges.size else np.zeros(0, np.int64))
    return out


def read_label_file(path: str | os.PathLike, n_frames: Sequence[int],
                    names: Sequence[str] | None = None) -> list[np.ndarray]:
    """Frame labels of each test video from a ``.m``, ``.mat`` or ``.npy`` file (module docstring).

    Args:
        path: the label file.
        n_frames: the frame count of each test video, in video order.
        names: the videos' names, for error messages.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {path}")
    names = list(names) if names is not None else [str(i + 1) for i in range(len(n_frames))]
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            flat = np.load(path, allow_pickle=False).ravel()
        except ValueError as e:
            raise ValueError(f"{path}: not a numeric .npy array (object arrays need pickle, which "
                             f"vadx never loads): {e}") from e
        if flat.size != sum(n_frames):
            raise ValueError(f"{path} holds {flat.size} labels; the {len(n_frames)} test videos "
                             f"have {sum(n_frames)} frames in all")
        splits = np.cumsum(n_frames)[:-1]
        return [as_labels(part, f"{path} (video {name})")
                for part, name in zip(np.split(flat, splits), names)]
    if suffix == ".m":
        entries = parse_m_file(path)
    elif suffix == ".mat":
        entries = _mat_ranges(path)
    else:
        raise ValueError(f"label file must be {', '.join(LABEL_EXTENSIONS)}, got {path.name!r}")
    if len(entries) != len(n_frames):
        raise ValueError(f"{path} has {len(entries)} entries for {len(n_frames)} test videos "
                         f"({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})")
    return [frames_to_labels(e, n, what=f"{path} entry {k + 1} (video {name})")
            for k, (e, n, name) in enumerate(zip(entries, n_frames, names))]

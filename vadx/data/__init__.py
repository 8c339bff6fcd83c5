"""Benchmark datasets and a synthetic scene, as training videos and labelled test videos.

>>> ds = vadx.data.load("ucsd-ped2", "/data/UCSD_Anomaly_Dataset.v1p2")
>>> det.fit(ds.train)                       # Videos are re-iterable chunk sources
>>> for video in ds.test:
...     scores = det.score(video)           # frames are read lazily, chunk by chunk
...     video.labels                        # uint8 [T], 1 = anomalous
...     video.masks.read() if video.masks else None   # bool [T, H, W], loaded on demand

Names (:data:`DATASETS`) and layouts: ``ucsd-ped1``/``ucsd-ped2`` (:mod:`vadx.data.ucsd`: the
official layout or the frames-folder layout, detected), ``avenue`` (:mod:`vadx.data.avenue`),
``shanghaitech`` (:mod:`vadx.data.shanghaitech`), ``ucf-crime`` (:mod:`vadx.data.ucf_crime`),
``frames`` (any dataset in the frames-folder layout, :mod:`vadx.data.frames`) and ``synthetic``
(generated, no root: :mod:`vadx.data.synthetic`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vadx.data.avenue import load_avenue
from vadx.data.base import Dataset, DatasetError, Masks, Video
from vadx.data.frames import load_frames
from vadx.data.labels import label_intervals, read_label_file
from vadx.data.shanghaitech import load_shanghaitech
from vadx.data.synthetic import make_dataset
from vadx.data.ucf_crime import load_ucf_crime
from vadx.data.ucsd import load_ucsd

DATASETS = ("ucsd-ped1", "ucsd-ped2", "avenue", "shanghaitech", "ucf-crime", "frames", "synthetic")


def load(name: str, root: str | os.PathLike | None = None, **options: Any) -> Dataset:
    """Load dataset ``name`` from ``root`` (``synthetic``: generated, no root).

    Options common to all datasets are the reader options ``chunk_size`` (default 64),
    ``grayscale`` (UCSD: True; others: None = the files' channels) and ``size`` ((H, W) to
    resize frames and masks to), and ``fps``. Dataset-specific options:

    - ``ucsd-ped1``, ``ucsd-ped2``, ``frames``, ``avenue``: ``labels`` (a label file or, for
      Avenue's official layout, the label folder) where it is not found under the root;
    - ``ucf-crime``: ``annotation``, ``train_list``, ``train`` ("normal" or "all");
    - ``synthetic``: ``seed``, ``n_train``, ``n_test``, ``n_frames``, ``height``, ``width``,
      ``kinds`` (see :func:`vadx.data.synthetic.make_dataset`).

    Raises:
        ValueError: unknown name, or a root given for ``synthetic``/missing for the others.
        FileNotFoundError: the root does not exist.
        DatasetError: the root is not in a layout of that dataset; the message lists what was
            expected and what was found.
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {', '.join(DATASETS)}; got {name!r}")
    if name == "synthetic":
        if root is not None:
            raise ValueError(f"the synthetic dataset is generated: root must be None, got {root!r}")
        return make_dataset(**options)
    if root is None:
        raise ValueError(f"dataset {name!r} needs root, the folder that holds it")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root not found (or not a folder): {root}")
    if name in ("ucsd-ped1", "ucsd-ped2"):
        return load_ucsd(root, variant=name.removeprefix("ucsd-"), **options)
    loaders = {"avenue": load_avenue, "shanghaitech": load_shanghaitech,
               "ucf-crime": load_ucf_crime, "frames": load_frames}
    return loaders[name](root, **options)


__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetError",
    "Masks",
    "Video",
    "label_intervals",
    "load",
    "load_avenue",
    "load_frames",
    "load_shanghaitech",
    "load_ucf_crime",
    "load_ucsd",
    "make_dataset",
    "read_label_file",
]

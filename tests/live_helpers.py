"""Shared by the live-camera and archive tests (tests/test_stream.py, test_watch.py,
test_distributed.py): a small latent-pred model fitted once per test session and saved, and the
synthetic clips it is tested on."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np

import vadx
import vadx.data

# latent-pred small enough to fit in ~10 s on one core, good enough to find the synthetic scene's
# appearance anomaly (a bright cart) through JPEG compression (as tests/test_latent_pred.py SMALL)
SMALL = dict(input_height=64, encoder_blocks=3, channels=[8, 16, 32], motion_hidden=32, k=4,
             horizon=4, clip_length=24, epochs=6, stage1_epochs=1, lr=3e-3, lr_step=100,
             progress=False, seed=0, chunk_size=16)


@functools.cache
def scene():
    """The synthetic scene: 4 normal training clips, test clips with an appearance anomaly."""
    return vadx.data.load("synthetic", seed=0, n_train=4, n_test=4, n_frames=100,
                          kinds=("appearance",))


@functools.cache
def model_file() -> Path:
    """latent-pred (SMALL) fitted on :func:`scene`, saved once per session in a temporary
    folder (removed at exit)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        det = vadx.create("latent-pred", **SMALL).fit(scene().train)
    finally:
        torch.set_num_threads(before)
    folder = Path(tempfile.mkdtemp(prefix="vadx-live-"))
    atexit.register(shutil.rmtree, folder, True)  # removed when the test session ends
    path = folder / "latent-pred.vadx"
    det.save(path)
    return path


def anomaly_clip() -> tuple[np.ndarray, np.ndarray]:
    """(frames uint8 [100, 1, 120, 160], labels [100]) of the test clip with a cart (the anomaly)
    from frame 25 to the end: the model's scores stay below threshold_ before it (at most 0.034
    against 0.046) and rise above it from frame ~41, as the cart comes into view."""
    test = scene().test[1]
    return test.read().numpy(), np.asarray(test.labels)

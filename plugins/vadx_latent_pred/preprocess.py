"""Input preprocessing (Sec. 3.1 and Table 1): resize, then subtract the background frame.

Frames are resized with plain bilinear interpolation (as the paper says; no antialiasing
filter, which costs more than the encoder on a CPU and is not what the paper did) to a fixed height
and the width that keeps the training frames' aspect ratio, rounded to a multiple of
``2 ** encoder_blocks`` so that every encoder block can halve it. With height 128 this gives
the paper's Table 1 sizes: 128x192 for UCSD (240x360), 128x224 for Avenue (360x640) and
ShanghaiTech (480x856). Test frames are resized to the size fixed at training (a different
aspect ratio is stretched to it: the background frame and the codes are per camera view).
Pixel values are scaled to [0, 1] before the background (the per-pixel mean of all training
frames, in the same units) is subtracted.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def model_size(frame_hw: tuple[int, int], height: int, multiple: int) -> tuple[int, int]:
    """``(height, width)``: the aspect of ``frame_hw`` kept, width a multiple of ``multiple``."""
    h, w = frame_hw
    width = max(multiple, round(w * height / h / multiple) * multiple)
    return height, int(width)


def interpolate(frames: Tensor, size: tuple[int, int]) -> Tensor:
    """uint8 or float frames ``[T, C, H, W]`` -> float ``[T, C, *size]``, same value range."""
    x = frames.float()
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)

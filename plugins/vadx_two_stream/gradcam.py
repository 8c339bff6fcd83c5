"""Grad-CAM (Selvaraju et al. 2017) on the last conv layer of a stream, as the paper's §5.5 uses it."""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F


def grad_cam(fmap: Tensor, grad: Tensor, size: tuple[int, int]) -> Tensor:
    """``ReLU(sum_c alpha_c A_c)`` with ``alpha_c`` the spatial mean of d logit / d A_c.

    Args:
        fmap, grad: the stream's last feature map ``[N, C, h, w]`` and the logit's gradient at it.
        size: (H, W) of the input frames; the map is bilinearly upsampled to it.
    Returns:
        ``[N, H, W]`` float32, in logit units (not normalised per frame, so maps of different
        frames stay comparable).
    """
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = (weights * fmap).sum(dim=1, keepdim=True).relu()
    return F.interpolate(cam, size=size, mode="bilinear", align_corners=False)[:, 0].float()

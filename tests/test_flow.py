"""vadx.flow: Farneback flow on vadx frames and its HSV image encoding, against OpenCV."""

import cv2
import numpy as np
import pytest
import torch

from vadx.flow import farneback, flow_to_rgb


def _textured(T=3, H=64, W=80, dx=2, dy=1, seed=0):
    """A smooth random texture translated by (dx, dy) pixels per frame, uint8 [T, 1, H, W]."""
    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (H + 40, W + 40)).astype(np.float32), (0, 0), 2.0)
    big = cv2.normalize(big, None, 0, 255, cv2.NORM_MINMAX)
    frames = [big[20 - t * dy:20 - t * dy + H, 20 - t * dx:20 - t * dx + W] for t in range(T)]
    return torch.from_numpy(np.stack(frames)[:, None].round().astype(np.uint8))


def test_translation_is_recovered():
    flow = farneback(_textured())
    assert flow.shape == (3, 2, 64, 80) and flow.dtype == torch.float32
    assert flow[0].abs().max() == 0  # first frame: its own predecessor
    inner = flow[1:, :, 16:-16, 16:-16]
    torch.testing.assert_close(inner[:, 0].mean(), torch.tensor(2.0), atol=0.1, rtol=0)
    torch.testing.assert_close(inner[:, 1].mean(), torch.tensor(1.0), atol=0.1, rtol=0)


def test_chunks_with_previous_equal_one_call():
    frames = _textured(T=5)
    whole = farneback(frames)
    parts = torch.cat([farneback(frames[:2]), farneback(frames[2:], previous=frames[1:2])])
    assert torch.equal(whole, parts)


def test_colour_is_converted_like_opencv():
    rgb = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (2, 8, 9, 3), dtype=np.uint8))
    grey = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb.numpy()])
    a = farneback(rgb.permute(0, 3, 1, 2))
    b = farneback(torch.from_numpy(grey)[:, None])
    torch.testing.assert_close(a, b, atol=0.05, rtol=0)  # cv2 rounds luma in fixed point


def test_flow_to_rgb_matches_opencv_hsv():
    flow = torch.randn(2, 2, 12, 14) * 3
    rgb = flow_to_rgb(flow, max_magnitude=5.0)
    assert rgb.shape == (2, 3, 12, 14) and rgb.dtype == torch.uint8
    for t in range(2):
        fx, fy = flow[t, 0].numpy(), flow[t, 1].numpy()
        mag, ang = cv2.cartToPolar(fx, fy, angleInDegrees=True)
        hsv = np.stack([ang, np.ones_like(mag), np.clip(mag / 5.0, 0, 1)], -1).astype(np.float32)
        ref = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255  # float HSV: H in degrees, S, V in [0, 1]
        # cartToPolar's angle is accurate to ~0.3 degree
        np.testing.assert_allclose(rgb[t].permute(1, 2, 0).numpy(), ref, atol=3)


def test_flow_to_rgb_per_frame_scale():
    flow = torch.zeros(1, 2, 3, 3)
    flow[0, 0, 1, 1] = 0.5  # the only motion, pointing right: full-brightness red
    rgb = flow_to_rgb(flow)
    assert rgb[0, :, 1, 1].tolist() == [255, 0, 0] and rgb[0, :, 0, 0].tolist() == [0, 0, 0]


def test_bad_inputs():
    with pytest.raises(ValueError, match="frames must be a uint8 tensor .* got torch.float32"):
        farneback(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="previous must be one frame \\[1, C, 8, 8\\]"):
        farneback(torch.zeros(2, 1, 8, 8, dtype=torch.uint8),
                  previous=torch.zeros(1, 1, 4, 8, dtype=torch.uint8))
    with pytest.raises(TypeError, match="unknown parameters \\['window'\\]"):
        farneback(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), window=3)
    with pytest.raises(ValueError, match="flow must be a tensor \\[T, 2, H, W\\]"):
        flow_to_rgb(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="max_magnitude must be a positive"):
        flow_to_rgb(torch.zeros(1, 2, 4, 4), max_magnitude=0.0)

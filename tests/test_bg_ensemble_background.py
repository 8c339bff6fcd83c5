"""vadx_bg_ensemble.background: the most-occurrence-frequency (MOF) background model."""

import pytest
import torch

from vadx_bg_ensemble.background import MOFBackground, remove_background


def scene(T=60, H=20, W=30, C=1, seed=0):
    """A textured static background, sensor noise (+-1 grey level in 27 % of the frames), and two
    objects crossing the frame (each pixel is covered in at most 2 of every 13 frames).
    Returns (frames, bg, mask)."""
    g = torch.Generator().manual_seed(seed)
    bg = (torch.rand(C, H, W, generator=g) * 150 + 50).round()
    frames = bg.repeat(T, 1, 1, 1)
    noisy = torch.rand(frames.shape, generator=g) < 0.4
    frames += torch.randint(-1, 2, frames.shape, generator=g) * noisy
    mask = torch.zeros(T, H, W, dtype=torch.bool)
    for t in range(T):
        x = (2 * t) % (W - 4)
        mask[t, 3:8, x:x + 4] = True  # a dark object moving right, 2 px/frame
        y = (2 * t) % (H - 2)
        mask[t, y:y + 2, 20:24] = True  # a bright object moving down, 2 px/frame
    frames = torch.where(mask.unsqueeze(1), torch.where(torch.arange(W) < 20, 10.0, 250.0), frames)
    return frames.clamp(0, 255).to(torch.uint8), bg.to(torch.uint8), mask


def test_recovers_a_known_background_under_moving_objects():
    frames, bg, _ = scene()
    model = MOFBackground().fit([frames])
    err = (model.background.int() - bg.int()).abs()
    assert model.background.dtype == torch.uint8 and model.background.shape == bg.shape
    assert err.max() == 0
    # a temporal mean would not: the bright object pulls it up
    mean_err = (frames.float().mean(0) - bg.float()).abs()
    assert mean_err.max() > 15


def test_rgb_and_patches():
    frames, bg, _ = scene(C=3)
    assert (MOFBackground().fit([frames]).background.int() - bg.int()).abs().max() <= 1
    # constant 5 x 5 patches: one value per patch, recovered despite objects and noise
    g = torch.Generator().manual_seed(1)
    patch_bg = (torch.rand(1, 4, 6, generator=g) * 200 + 20).round()
    full = patch_bg.repeat_interleave(5, 1).repeat_interleave(5, 2)  # [1, 20, 30]
    frames, _, mask = scene()
    noise = torch.randint(-1, 2, frames.shape, generator=g) * (torch.rand(frames.shape, generator=g) < 0.4)
    frames = torch.where(mask.unsqueeze(1), frames.float(), full + noise)
    model = MOFBackground(patch_size=5).fit([frames.clamp(0, 255).to(torch.uint8)])
    assert (model.background.int() - full.int()).abs().max() <= 1
    # non-square patches that do not divide the frame
    model = MOFBackground(patch_size=(7, 4)).fit([frames.clamp(0, 255).to(torch.uint8)])
    assert model.background.shape == (1, 20, 30)


def test_bins_give_bin_centres():
    frames = torch.full((5, 1, 2, 2), 37, dtype=torch.uint8)
    model = MOFBackground(bins=16).fit([frames])  # bin 2 covers 32..47
    assert torch.equal(model.background, torch.full((1, 2, 2), 40, dtype=torch.uint8))


def test_streaming_equals_offline():
    frames, _, _ = scene(T=50)
    offline = MOFBackground().fit([frames])
    streamed = MOFBackground()
    for a, b in [(0, 1), (1, 8), (8, 9), (9, 30), (30, 50)]:
        streamed.partial_fit(frames[a:b])
    assert torch.equal(streamed.background, offline.background)
    assert torch.equal(streamed._hist, offline._hist)
    # videos as iterables of chunks, and several videos
    chunked = MOFBackground().fit([[frames[:20], frames[20:]], frames[:0]])
    assert torch.equal(chunked.background, offline.background) and chunked.n_frames == 50


def test_remove_and_foreground():
    frames, bg, mask = scene()
    model = MOFBackground().fit([frames])
    out = model.remove(frames, tolerance=3, fill=128)
    fg = model.foreground(frames, tolerance=3)
    assert out.dtype == torch.uint8 and out.shape == frames.shape
    assert torch.equal(fg, mask)  # objects differ from the background by far more than 3 levels
    assert (out[:, 0][~mask] == 128).all()
    assert torch.equal(out[:, 0][mask], frames[:, 0][mask])
    # the functional form on a background tensor, and a model rebuilt from the tensor
    assert torch.equal(remove_background(frames, model.background, 3), out)
    assert torch.equal(MOFBackground.from_background(model.background).remove(frames, 3), out)
    # tolerance 0 keeps every pixel that is not exactly the background
    assert model.foreground(frames, 0).float().mean() > fg.float().mean()


def test_bad_inputs():
    frames, _, _ = scene(T=5)
    with pytest.raises(ValueError, match="patch_size"):
        MOFBackground(patch_size=0)
    with pytest.raises(ValueError, match="bins"):
        MOFBackground(bins=300)
    model = MOFBackground()
    with pytest.raises(RuntimeError, match="not fitted"):
        model.background
    with pytest.raises(RuntimeError, match="not fitted"):
        model.remove(frames, 3)
    with pytest.raises(TypeError, match="uint8"):
        model.partial_fit(frames.float())
    with pytest.raises(ValueError, match=r"\[T, C, H, W\]"):
        model.partial_fit(frames[:, 0])
    with pytest.raises(TypeError, match="list of videos"):
        model.fit(frames)
    with pytest.raises(ValueError, match="no frames"):
        MOFBackground().fit([frames[:0]])
    model.partial_fit(frames)
    with pytest.raises(ValueError, match=r"\(1, 20, 30\)"):
        model.partial_fit(frames[:, :, :10])
    with pytest.raises(ValueError, match=r"\(1, 20, 30\)"):
        model.remove(frames[:, :, :10], 3)
    with pytest.raises(ValueError, match="tolerance"):
        model.remove(frames, -1)
    with pytest.raises(ValueError, match="fill"):
        model.remove(frames, 3, fill=300)
    with pytest.raises(ValueError, match="background must be"):
        remove_background(frames, model.background.float(), 3)
    with pytest.raises(ValueError, match="background must be"):
        MOFBackground.from_background(torch.zeros(2, 4, 4, dtype=torch.uint8))
    with pytest.raises(RuntimeError, match="no histograms"):
        MOFBackground.from_background(model.background).partial_fit(frames)

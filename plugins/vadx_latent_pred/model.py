"""The networks of Li, Leroux & Simoens (CVIU 2021), Fig. 1.

- :class:`Encoder`: a 2-D conv encoder applied to one frame at a time; every block halves the
  resolution. The last block's output is the frame's *latent code* ``z``; the other blocks'
  outputs are the skip maps.
- :class:`Decoder`: the U-Net upsampling path that reconstructs frame ``T_k`` from ``z_k`` and
  the skip maps of the PREVIOUS frame ``T_{k-1}`` (Sec. 3.1: skips from the current frame would
  let the decoder copy its input instead of learning through the bottleneck).
- :class:`MotionModel`: three Conv3D blocks (3x3x3, stride 2 in time, BatchNorm, LeakyReLU) that
  map the codes of ``k`` consecutive frames, stacked in time, to the predicted code of a future
  frame (Sec. 3.2).

Open choices (the paper gives no layer widths): encoder block ``i`` has ``channels[i]`` maps and
is conv3x3 stride 2 -> BN -> LeakyReLU -> conv3x3 -> BN -> LeakyReLU (the stride-2 first conv,
instead of a full-resolution conv + max-pool, keeps the encoder at ~65 MMAC per 128x192 frame);
decoder levels are ConvTranspose2d(2, stride 2) -> BN -> LeakyReLU, concatenation with the skip,
conv3x3 -> BN -> LeakyReLU, and a final linear ConvTranspose2d to the input channels (the target
is a background-subtracted frame, which is signed). LeakyReLU slope 0.2. The motion model keeps
the spatial size of the code (stride 1 in space, as the paper says), widens to ``hidden``
channels in its first two blocks and returns to the code's channels in the third; with k <= 8
the time axis is 1 after three stride-2 blocks (k = 8: 8 -> 4 -> 2 -> 1; k = 6: 6 -> 3 -> 2 ->
1); for larger k the remaining time steps are averaged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SLOPE = 0.2  # LeakyReLU negative slope (not given in the paper)


def _conv_bn(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
            nn.LeakyReLU(SLOPE, inplace=True)]


class Encoder(nn.Module):
    """Frame ``[N, C, H, W]`` -> the maps of every block; the last is the latent code.

    H and W must be divisible by ``2 ** len(channels)``.
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...]):
        super().__init__()
        blocks, cin = [], in_channels
        for c in channels:
            blocks.append(nn.Sequential(*_conv_bn(cin, c, 2), *_conv_bn(c, c, 1)))
            cin = c
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats


class Decoder(nn.Module):
    """``(z [N, c_n, h, w], skips)`` -> reconstruction ``[N, C, H, W]``.

    ``skips`` are the encoder maps of the previous frame, shallow to deep, without the code:
    ``[N, c_1, H/2, W/2], ..., [N, c_{n-1}, H/2^(n-1), W/2^(n-1)]``.
    """

    def __init__(self, out_channels: int, channels: tuple[int, ...]):
        super().__init__()
        ups, fuses = [], []
        for i in range(len(channels) - 1, 0, -1):  # deepest level first
            c_in, c_out = channels[i], channels[i - 1]
            ups.append(nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 2, 2, bias=False),
                                     nn.BatchNorm2d(c_out), nn.LeakyReLU(SLOPE, inplace=True)))
            fuses.append(nn.Sequential(*_conv_bn(2 * c_out, c_out, 1)))
        self.ups, self.fuses = nn.ModuleList(ups), nn.ModuleList(fuses)
        self.head = nn.ConvTranspose2d(channels[0], out_channels, 2, 2)

    def forward(self, z: Tensor, skips: list[Tensor]) -> Tensor:
        if len(skips) != len(self.ups):
            raise ValueError(f"skips must hold {len(self.ups)} maps (the previous frame's encoder "
                             f"maps without its code), got {len(skips)}")
        x = z
        for up, fuse, skip in zip(self.ups, self.fuses, reversed(skips)):
            x = fuse(torch.cat([up(x), skip], dim=1))
        return self.head(x)


class TimeStridedConv3d(nn.Conv3d):
    """``Conv3d(kernel 3x3x3, stride (2, 1, 1), padding 1)``, computed as one Conv2d.

    The three input time steps of each output step are stacked along channels and convolved
    with the kernel reshaped to ``[out, 3 * in, 3, 3]``: the same result and parameters, but
    PyTorch's CPU backend runs it with its fast (oneDNN) 2-D convolution, where a Conv3d of a
    single window falls back to a slow im2col path (7x slower per streamed frame here).
    """

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, 3, (2, 1, 1), 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        n, c, t, h, w = x.shape
        t_out = (t - 1) // 2 + 1
        x = F.pad(x, (0, 0, 0, 0, 1, 1))  # zero padding in time
        idx = (torch.arange(t_out, device=x.device)[:, None] * 2 + torch.arange(3, device=x.device)).flatten()
        x = x[:, :, idx].unflatten(2, (t_out, 3)).permute(0, 2, 3, 1, 4, 5)  # [n, t_out, 3, c, h, w]
        weight = self.weight.transpose(1, 2).flatten(1, 2)  # [out, 3 * c, 3, 3], time-major
        y = F.conv2d(x.reshape(n * t_out, 3 * c, h, w), weight, None, 1, 1)
        return y.unflatten(0, (n, t_out)).transpose(1, 2)  # [n, out, t_out, h, w]


class MotionModel(nn.Module):
    """Codes of k frames ``[N, c, k, h, w]`` (time on dim 2) -> predicted code ``[N, c, h, w]``."""

    def __init__(self, channels: int, hidden: int, n_blocks: int = 3):
        super().__init__()
        widths = [channels] + [hidden] * (n_blocks - 1) + [channels]
        layers: list[nn.Module] = []
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [TimeStridedConv3d(cin, cout), nn.BatchNorm3d(cout),
                       nn.LeakyReLU(SLOPE, inplace=True)]
        self.net = nn.Sequential(*layers)

    def forward(self, codes: Tensor) -> Tensor:
        return self.net(codes).mean(dim=2)


class LatentPredNet(nn.Module):
    """Encoder + previous-frame-skip decoder + Conv3D motion model, one module for saving."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], motion_hidden: int):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        self.encoder = Encoder(in_channels, channels)
        self.decoder = Decoder(in_channels, channels)
        self.motion = MotionModel(channels[-1], motion_hidden)

    def predict(self, codes: Tensor) -> Tensor:
        """Codes ``[N, k, c, h, w]`` (time on dim 1, oldest first) -> predicted code ``[N, c, h, w]``."""
        return self.motion(codes.transpose(1, 2))

    def conv_weights(self) -> list[Tensor]:
        """The convolution kernels, the ``W`` of eq. (1)'s L2 term (biases and BN excluded)."""
        return [m.weight for m in self.modules()
                if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d))]

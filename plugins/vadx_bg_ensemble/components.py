"""The networks of the four feature components (Jadhav & Inamdar §3.2).

All work on background-removed grey frames scaled to [0, 1] (the greyed background is 0.5) whose
height and width are multiples of :data:`GRID` (8): one cell of that grid is one "patch" of the
appearance and motion auto-encoders and one window of the density CNN, and the generator halves
the size three times.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GRID = 8  # patch side of the auto-encoders, window of the density CNN, and the size multiple


def patchify(x: Tensor, patch: int) -> Tensor:
    """``[B, C, H, W]`` -> ``[B, C*patch*patch, H/patch, W/patch]``: each patch as channels, so
    1x1 convolutions act as a fully connected network applied to every patch."""
    return F.pixel_unshuffle(x, patch)


class SDAE(nn.Module):
    """Stacked denoising auto-encoder of 1x1 convolutions: ``len(widths)`` encoder layers and as
    many decoder layers (mirrored widths, back to ``in_channels``), ReLU between layers.

    Args:
        in_channels: channels of the patchified input.
        widths: encoder widths; the last is the code size.
        sigmoid_output: squash the reconstruction to [0, 1] (intensities) or not (flow).
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...], sigmoid_output: bool):
        super().__init__()
        enc, dec = [], []
        prev = in_channels
        for w in widths:
            enc += [nn.Conv2d(prev, w, 1), nn.ReLU(inplace=True)]
            prev = w
        outs = list(reversed(widths[:-1])) + [in_channels]
        for i, w in enumerate(outs):
            dec.append(nn.Conv2d(prev, w, 1))
            if i < len(outs) - 1:
                dec.append(nn.ReLU(inplace=True))
            prev = w
        if sigmoid_output:
            dec.append(nn.Sigmoid())
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(reconstruction, code)."""
        code = self.encoder(x)
        return self.decoder(code), code


class DensityCNN(nn.Module):
    """Foreground density per 8x8 window: a 3x3 convolution (per-pixel features: whether a pixel
    differs from the greyed background is not linear in its value), an 8x8 stride-8 window
    convolution, joined with the appearance code of the same patch (the paper feeds the appearance
    representation to the density component), then two 1x1 layers and a sigmoid (a fraction)."""

    def __init__(self, code_channels: int, hidden: int = 32, pixel: int = 8):
        super().__init__()
        self.pixel = nn.Sequential(nn.Conv2d(1, pixel, 3, 1, 1), nn.ReLU(inplace=True))
        self.window = nn.Conv2d(pixel, hidden, GRID, stride=GRID)
        self.head = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(hidden + code_channels, hidden, 1),
                                  nn.ReLU(inplace=True), nn.Conv2d(hidden, 1, 1))

    def logits(self, x: Tensor, code: Tensor) -> Tensor:
        # centred input: the greyed background (0.5) is 0
        return self.head(torch.cat([self.window(self.pixel(x - 0.5)), code], dim=1))

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        return torch.sigmoid(self.logits(x, code))


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2, inplace=True))


class Encoder(nn.Module):
    """Five 3x3 convolutions, three of stride 2; returns every stage (for the generator's skips)."""

    def __init__(self, in_channels: int, widths: tuple[int, ...]):
        super().__init__()
        c1, c2, c3 = widths
        self.stages = nn.ModuleList([_conv(in_channels, c1), _conv(c1, c2, 2), _conv(c2, c3, 2),
                                     _conv(c3, c3, 2), _conv(c3, c3)])

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


class Generator(nn.Module):
    """Scene reconstruction: frame t from frames t-1 and t+1 (2 channels) -> 1 channel in [0, 1].

    Ten convolutions: the five of :class:`Encoder`, then five decoding ones (one at 1/8 scale, three
    after a 2x nearest upsampling joined with the encoder stage of the same scale, U-Net style, and
    the output layer).
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64)):
        super().__init__()
        c1, c2, c3 = widths
        self.encoder = Encoder(2, widths)
        self.dec = nn.ModuleList([_conv(c3, c3), _conv(c3 + c3, c3), _conv(c3 + c2, c2), _conv(c2 + c1, c1)])
        self.out = nn.Conv2d(c1, 1, 3, 1, 1)

    def forward(self, before: Tensor, after: Tensor) -> Tensor:
        e1, e2, e3, _, e5 = self.encoder(torch.cat([before, after], dim=1))
        d = self.dec[0](e5)
        for layer, skip in zip(self.dec[1:], (e3, e2, e1)):
            d = layer(torch.cat([F.interpolate(d, scale_factor=2.0, mode="nearest"), skip], dim=1))
        return torch.sigmoid(self.out(d))


class Discriminator(nn.Module):
    """Real or generated frame: the generator's encoder structure on one frame, then a 1x1 layer
    giving one logit per cell of the 1/8-scale grid (a patch discriminator)."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64)):
        super().__init__()
        self.encoder = Encoder(1, widths)
        self.head = nn.Conv2d(widths[-1], 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x)[-1])

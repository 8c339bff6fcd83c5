"""Training of the four components on normal frames (minibatch Adam, a fixed number of steps each).

The training set is held at the working resolution: background-removed frames as uint8, the
foreground density targets, and the flow of every ``sample_stride``-th frame (float16).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from vadx.progress import bar as progress_bar
from vadx_bg_ensemble.components import GRID, SDAE, DensityCNN, Discriminator, Generator, patchify


@dataclass
class TrainingSet:
    """Per training video: ``frames`` uint8 ``[T, 1, Hp, Wp]`` (background removed, padded),
    ``density`` float16 ``[T, 1, Hp/8, Wp/8]`` (foreground fraction per window), ``flows`` float16
    ``[n, 2, Hp, Wp]`` (already divided by the flow scale) of the sampled frames."""

    frames: list[Tensor] = field(default_factory=list)
    density: list[Tensor] = field(default_factory=list)
    flows: list[Tensor] = field(default_factory=list)

    def n_frames(self) -> int:
        return sum(int(f.shape[0]) for f in self.frames)


class _Sampler:
    """Uniform random (video, frame) indices, restricted to frames with ``margin`` neighbours."""

    def __init__(self, lengths: list[int], margin: int, gen: torch.Generator):
        self.index = [(v, t) for v, n in enumerate(lengths) for t in range(margin, n - margin)]
        if not self.index:
            raise ValueError(f"training videos are too short: need at least {2 * margin + 1} frames")
        self.gen = gen

    def __call__(self, batch: int) -> list[tuple[int, int]]:
        picks = torch.randint(len(self.index), (batch,), generator=self.gen).tolist()
        return [self.index[i] for i in picks]


def _as_float(frames: Tensor) -> Tensor:
    return frames.float() / 255.0


def _minimise(model: torch.nn.Module, step_loss, steps: int, lr: float, desc: str,
              progress: bool) -> float:
    """Adam on ``model``'s parameters for ``steps`` steps of ``step_loss()`` (in training mode);
    returns the last step's loss."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    loss = torch.tensor(float("nan"))
    with progress_bar(steps, desc, "step", show=progress) as bar:
        for _ in range(steps):
            loss = step_loss()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(1, loss=loss.detach())
    model.eval()
    return float(loss.detach())


def train_sdae(model: SDAE, batches, steps: int, lr: float, noise: float, gen: torch.Generator,
               desc: str, progress: bool) -> float:
    """Denoising auto-encoding of patchified inputs: Gaussian noise of std ``noise`` in, the clean
    patches out (mean squared error). ``batches()`` yields ``[B, C, H, W]`` inputs. Returns the
    last step's loss."""
    def step_loss() -> Tensor:
        x = patchify(batches(), GRID)
        noisy = x + noise * torch.randn(x.shape, generator=gen).to(x.device)
        rec, _ = model(noisy)
        return F.mse_loss(rec, x)

    return _minimise(model, step_loss, steps, lr, desc, progress)


def train_density(model: DensityCNN, appearance: SDAE, data: TrainingSet, sampler: _Sampler, steps: int,
                  batch: int, lr: float, desc: str, progress: bool, device: torch.device) -> float:
    """Regress the foreground fraction of each 8x8 window (from the MOF foreground mask); binary
    cross-entropy against the fraction (it has the sigmoid's gradient, unlike squared error)."""
    def step_loss() -> Tensor:
        idx = sampler(batch)
        x = _as_float(torch.stack([data.frames[v][t] for v, t in idx]).to(device))
        target = torch.stack([data.density[v][t] for v, t in idx]).float().to(device)
        with torch.no_grad():
            _, code = appearance(patchify(x, GRID))
        return F.binary_cross_entropy_with_logits(model.logits(x, code), target)

    return _minimise(model, step_loss, steps, lr, desc, progress)


def train_scene(generator: Generator, discriminator: Discriminator, data: TrainingSet, sampler: _Sampler,
                steps: int, batch: int, lr: float, adv_weight: float, desc: str, progress: bool,
                device: torch.device) -> float:
    """Frame t from t-1 and t+1: mean squared error plus ``adv_weight`` times the adversarial loss
    (least-squares GAN, as in future-frame prediction for anomaly detection); the discriminator
    tells real frames from generated ones. Returns the last reconstruction loss."""
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    generator.train()
    discriminator.train()
    rec = torch.tensor(float("nan"))
    with progress_bar(steps, desc, "step", show=progress) as bar:
        for _ in range(steps):
            idx = sampler(batch)
            trip = torch.stack([data.frames[v][t - 1:t + 2, 0] for v, t in idx]).to(device)  # [B, 3, H, W]
            trip = _as_float(trip)
            before, target, after = trip[:, 0:1], trip[:, 1:2], trip[:, 2:3]
            fake = generator(before, after)
            rec = F.mse_loss(fake, target)
            g_loss = rec
            if adv_weight > 0:
                g_loss = g_loss + adv_weight * ((discriminator(fake) - 1) ** 2).mean() / 2
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            if adv_weight > 0:
                d_loss = (((discriminator(target) - 1) ** 2).mean()
                          + (discriminator(fake.detach()) ** 2).mean()) / 2
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
            bar.update(1, loss=rec.detach())
    generator.eval()
    discriminator.eval()
    return float(rec.detach())


def frame_batches(data: TrainingSet, sampler: _Sampler, batch: int, device: torch.device):
    """A closure drawing ``batch`` random training frames as float ``[B, 1, Hp, Wp]``."""
    def draw() -> Tensor:
        return _as_float(torch.stack([data.frames[v][t] for v, t in sampler(batch)]).to(device))
    return draw


def flow_batches(data: TrainingSet, sampler: _Sampler, batch: int, device: torch.device):
    """A closure drawing ``batch`` random training flows as float ``[B, 2, Hp, Wp]``."""
    def draw() -> Tensor:
        return torch.stack([data.flows[v][t] for v, t in sampler(batch)]).float().to(device)
    return draw


def sampler(lengths: list[int], margin: int, gen: torch.Generator) -> _Sampler:
    return _Sampler(lengths, margin, gen)


def density_map(model: DensityCNN, appearance: SDAE, x: Tensor) -> Tensor:
    """Predicted density ``[B, 1, h, w]`` of float frames ``[B, 1, Hp, Wp]``."""
    _, code = appearance(patchify(x, GRID))
    return model(x, code)


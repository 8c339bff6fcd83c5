"""Training of :class:`~vadx_latent_pred.model.LatentPredNet` with the loss of eq. (1).

Clip batching (an implementation choice, same loss): a training *window* is k input frames and
the target frame ``horizon`` steps after the last one. Instead of encoding every window's frames
separately, training takes clips of ``clip_length`` consecutive frames, encodes each frame once,
reconstructs every frame but the first from its code and the previous frame's skip maps, and
predicts the target of every window inside the clip. Eq. (1) per window is
``lambda_r * sum_{q=2..k} ||T^_q - T_q||^2 + lambda_p * ||z^_t - z_t||^2 + gamma ||W||^2``
(sums over pixels and code elements, as the paper); here its reconstruction term is
``(k - 1) *`` the mean over the clip's reconstructed frames of the per-frame pixel sum, i.e. the
same expectation, and its prediction term is the mean over the clip's windows. The target code
``z_t`` is detached: the encoder learns from the prediction loss through the input codes only, so
it cannot lower the loss by shrinking every code (the paper does not say).

Stages (Sec. 3.3): stage 1 (lambda_r = 1, lambda_p = 0.001) runs until the reconstruction loss
converges, stage 2 (lambda_r = 0.001, lambda_p = 1) for the remaining epochs. "Converges" is not
defined by the paper: stage 1 ends after the first epoch whose mean reconstruction loss improved
by less than ``converge_tol`` (relative) on the previous epoch's, after at most half the epochs
(rounded up), unless ``stage1_epochs`` fixes it. Adam, step decay of the learning rate per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

import vadx.precision
import vadx.progress
from vadx_latent_pred.model import LatentPredNet


def clips_of(lengths: list[int], clip_length: int, span: int) -> list[tuple[int, int, int]]:
    """``(video, start, length)`` clips covering every window of ``span`` frames exactly once.

    Consecutive clips overlap by ``span - 1`` frames; the last clip of a video is aligned to its
    end (and so may share a few windows with the one before); a video shorter than
    ``clip_length`` is one clip; videos shorter than ``span`` give none.
    """
    out = []
    step = clip_length - span + 1
    for v, n in enumerate(lengths):
        if n < span:
            continue
        if n <= clip_length:
            out.append((v, 0, n))
            continue
        starts = list(range(0, n - clip_length + 1, step))
        if starts[-1] != n - clip_length:
            starts.append(n - clip_length)
        out += [(v, s, clip_length) for s in starts]
    return out


def clip_losses(net: LatentPredNet, x: Tensor, k: int, horizon: int) -> tuple[Tensor, Tensor]:
    """Reconstruction and prediction terms of eq. (1) for clips ``x [B, L, C, H, W]``."""
    b, n = x.shape[:2]
    feats = net.encoder(x.flatten(0, 1))
    z = feats[-1].unflatten(0, (b, n))  # [B, L, c, h, w]
    # frame q is rebuilt from its own code and frame q-1's skip maps
    skips = [f.unflatten(0, (b, n))[:, :-1].flatten(0, 1) for f in feats[:-1]]
    rec = net.decoder(z[:, 1:].flatten(0, 1), skips)
    # losses in float32 whatever the autocast precision of the networks (long sums)
    loss_r = (rec.float() - x[:, 1:].flatten(0, 1)).square().flatten(1).sum(1).mean() * (k - 1)
    n_win = n - k - horizon + 1
    inputs = z.unfold(1, k, 1)[:, :n_win]  # [B, n_win, c, h, w, k]
    inputs = inputs.permute(0, 1, 2, 5, 3, 4).flatten(0, 1)  # [B*n_win, c, k, h, w]
    pred = net.motion(inputs)
    target = z[:, k + horizon - 1:].flatten(0, 1).detach()
    loss_p = (pred.float() - target.float()).square().flatten(1).sum(1).mean()
    return loss_r, loss_p


def train(net: LatentPredNet, videos: list[Tensor], prep: Callable[[Tensor], Tensor], *, k: int,
          horizon: int, clip_length: int, batch_size: int, epochs: int, stage1_epochs: int | None,
          converge_tol: float, lr: float, lr_decay: float, lr_step: int, weight_decay: float,
          clip_fraction: float, generator: torch.Generator, progress: bool,
          precision: str = "fp32") -> dict:
    """Train ``net`` in place on uint8 videos ``[T, C, H, W]`` (already at the model's size).

    ``prep`` turns uint8 frames into the network's input (background subtracted); ``generator``
    draws the order of the clips; ``progress`` shows a bar (:func:`vadx.progress.bar`);
    ``precision`` (:func:`vadx.precision.resolve`) may run the forward passes under bf16
    autocast (the losses are summed in float32). Returns the training log: per-epoch mean
    losses, the stage of each epoch, the epoch stage 2 began and the precision used.
    """
    span = k + horizon
    clips = clips_of([int(v.shape[0]) for v in videos], clip_length, span)
    if not clips:
        raise ValueError(f"videos: every training video is shorter than k + horizon = {span} "
                         f"frames, so no (input, target) window exists; got lengths "
                         f"{[int(v.shape[0]) for v in videos]}")
    per_epoch = max(1, round(clip_fraction * len(clips)))
    steps_per_epoch = 0
    by_len: dict[int, int] = {}
    # steps per epoch for the bar: clips are batched with clips of the same length
    for _, _, n in clips:
        by_len[n] = by_len.get(n, 0) + 1
    steps_per_epoch = sum(math.ceil(c * per_epoch / len(clips) / batch_size) for c in by_len.values())

    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=lr_step, gamma=lr_decay)
    weights = net.conv_weights()
    cap = stage1_epochs if stage1_epochs is not None else math.ceil(epochs / 2)
    stage, stage2_from = 1, None
    device = next(net.parameters()).device
    log = {"epochs": [], "stage2_from_epoch": None, "clips_per_epoch": per_epoch,
           "clips_total": len(clips), "precision": vadx.precision.resolve(precision, device)}
    net.train()
    total = epochs * steps_per_epoch
    with vadx.progress.bar(total, "latent-pred training", "step", show=progress) as bar:
        for epoch in range(epochs):
            if stage == 1 and epoch >= cap:
                stage, stage2_from = 2, epoch
            lam_r, lam_p = (1.0, 0.001) if stage == 1 else (0.001, 1.0)
            order = torch.randperm(len(clips), generator=generator)[:per_epoch].tolist()
            groups: dict[int, list[tuple[int, int, int]]] = {}
            for i in order:
                groups.setdefault(clips[i][2], []).append(clips[i])
            batches = [g[i:i + batch_size] for g in groups.values() for i in range(0, len(g), batch_size)]
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
            sums = {"rec": 0.0, "pred": 0.0}
            for batch in batches:
                x = torch.stack([prep(videos[v][s:s + n]) for v, s, n in batch])
                with vadx.precision.autocast(precision, device):
                    loss_r, loss_p = clip_losses(net, x, k, horizon)
                l2 = sum(w.square().sum() for w in weights)
                loss = lam_r * loss_r + lam_p * loss_p + weight_decay * l2
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                rec, pred = loss_r.item(), loss_p.item()
                sums["rec"] += rec
                sums["pred"] += pred
                bar.update(1, loss=loss.item(), stage=stage, rec=f"{rec:.3g}", pred=f"{pred:.3g}")
            sched.step()
            entry = {"epoch": epoch, "stage": stage, "rec": sums["rec"] / len(batches),
                     "pred": sums["pred"] / len(batches)}
            log["epochs"].append(entry)
            if stage == 1 and stage1_epochs is None and epoch >= 1:
                prev = log["epochs"][-2]["rec"]
                if (prev - entry["rec"]) < converge_tol * prev:
                    stage, stage2_from = 2, epoch + 1
    log["stage2_from_epoch"] = stage2_from
    net.eval()
    return log


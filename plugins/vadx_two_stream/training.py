"""Data balancing and the training loop of Petrocchi et al. (§3.3, §4.2).

- :func:`adaptive_sample`: frames sampled at one rate inside anomalous segments and another in
  normal ones; excluded (soft-anomaly) frames are never sampled.
- :func:`hard_mine`: of ``alpha * K`` candidates, the ``K`` with the highest loss.
- :func:`run_phase`: epochs of hard-mined batches with Adam and early stopping on a validation
  loss (best weights restored).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vadx import progress as _progress

EXCLUDED = -1  # frame label of a soft-anomaly frame left out of training (paper §3.4)


def adaptive_sample(labels: Tensor, *, source_fps: float, anomaly_fps: float,
                    normal_fps: float) -> Tensor:
    """Indices of the frames to train on: each run of equal labels is sampled at its class's rate.

    Within a run of ``L`` frames starting at ``s``, frame ``s + floor(k * source_fps / fps)`` is
    taken for ``k = 0, 1, ...`` while inside the run (every frame when ``fps >= source_fps``).
    Runs restart the sampling clock so a short anomalous segment always contributes its first frame.

    Args:
        labels: ``[T]`` integer frame labels: 0 normal, 1 anomalous, -1 excluded.
    """
    for name, v in (("source_fps", source_fps), ("anomaly_fps", anomaly_fps), ("normal_fps", normal_fps)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive number, got {v!r}")
    labels = torch.as_tensor(labels).long().flatten().cpu()
    out: list[Tensor] = []
    t, n = 0, labels.numel()
    while t < n:
        end = t
        while end < n and labels[end] == labels[t]:
            end += 1
        value = int(labels[t])
        if value != EXCLUDED:
            step = max(source_fps / (anomaly_fps if value == 1 else normal_fps), 1.0)
            k = torch.arange(math.ceil((end - t) / step))
            idx = t + torch.floor(k * step + 1e-9).long()
            out.append(idx[idx < end])
        t = end
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def hard_mine(losses: Tensor, k: int) -> Tensor:
    """Positions of the ``k`` highest losses (all of them when there are fewer), highest first."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k!r}")
    return torch.topk(losses, min(k, losses.numel())).indices


def weighted_bce(logits: Tensor, targets: Tensor, normal_weight: float, anomaly_weight: float) -> Tensor:
    """Per-sample binary cross-entropy times the class weight of the sample's label."""
    w = torch.where(targets > 0.5, anomaly_weight, normal_weight).to(logits.dtype)
    return w * F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")


def _snapshot(model: nn.Module) -> dict[str, Tensor]:
    """A copy of ``model``'s weights and buffers, to restore the best epoch's."""
    return {k: t.detach().clone() for k, t in model.state_dict().items()}


def run_phase(
    *,
    model: nn.Module,
    params: list[nn.Parameter],
    logits_of: Callable[[Tensor], Tensor],
    targets: Tensor,
    val_loss: Callable[[], float] | None,
    lr: float,
    batch_size: int,
    alpha: int,
    normal_weight: float,
    anomaly_weight: float,
    patience: int,
    max_epochs: int,
    generator: torch.Generator,
    train_mode: Callable[[bool], None],
    progress: bool,
    desc: str,
    keep_start: bool = False,
) -> dict:
    """Train ``params`` with Adam on hard-mined batches; early-stop on ``val_loss`` (patience).

    Each epoch shuffles the training samples and walks them in groups of ``alpha * batch_size``
    candidates (sampling without replacement); the candidates' losses are computed without
    dropout (``train_mode(False)``: an inference pass, as the paper describes it) and the
    ``batch_size`` highest are trained on. Without ``val_loss`` it runs ``max_epochs``.

    Args:
        logits_of: sample indices -> logits (with the graph when grad is enabled).
        targets: ``[N]`` 0/1 labels of the training samples.
        train_mode: switches the trainable modules between training and inference behaviour.
        progress: show a progress bar of the epochs (:func:`vadx.progress.bar`) with the last
            batch's loss and the validation loss.
        keep_start: the weights the phase starts from compete too (their validation loss is
            measured first, ``best_epoch`` 0 when no epoch beats them): phase 2 must not end
            worse than phase 1 left the model (on Ped2 every fine-tuning epoch raised the
            validation loss).
    Returns:
        ``{"val_loss": [per epoch], "best_epoch": int | None, "epochs": int}``, plus
        ``"start_val_loss"`` with ``keep_start``.
    """
    opt = torch.optim.Adam(params, lr=lr)
    n = targets.numel()
    history: dict = {"val_loss": [], "best_epoch": None, "epochs": 0}
    best, best_state, wait = math.inf, None, 0
    if keep_start and val_loss is not None:
        train_mode(False)
        best = history["start_val_loss"] = float(val_loss())
        history["best_epoch"] = 0
        best_state = _snapshot(model)
    with _progress.bar(max_epochs, desc, "epoch", show=progress) as bar:
        for epoch in range(max_epochs):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, alpha * batch_size):
                cand = order[start:start + alpha * batch_size]
                train_mode(False)
                with torch.no_grad():
                    losses = weighted_bce(logits_of(cand), targets[cand], normal_weight, anomaly_weight)
                chosen = cand[hard_mine(losses, batch_size)]
                train_mode(True)
                loss = weighted_bce(logits_of(chosen), targets[chosen], normal_weight, anomaly_weight).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            train_mode(False)
            history["epochs"] = epoch + 1
            if val_loss is None:
                bar.update(1, loss=loss.detach())
                continue
            v = float(val_loss())
            history["val_loss"].append(v)
            bar.update(1, loss=loss.detach(), val_loss=f"{v:.4f}")
            if v < best:
                best, wait, history["best_epoch"] = v, 0, epoch + 1
                best_state = _snapshot(model)
            else:
                wait += 1
                if wait >= patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    train_mode(False)
    return history

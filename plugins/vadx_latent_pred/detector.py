"""The ``latent-pred`` detector: Li, Leroux & Simoens, "Decoupled appearance and motion learning
for efficient anomaly detection in surveillance video", CVIU 2021.

An encoder turns each (background-subtracted) frame into a latent code; a Conv3D motion model
predicts, from the codes of k consecutive frames, the code of the frame ``horizon`` = 6 steps
after the last of them (t = k + 6 in the paper's 1-based numbering). A frame's anomaly score is
the mean squared difference between its predicted and its actual code, Z-MSE (eq. 2). Only the
encoder and the motion model run at inference; each frame is encoded once and its code is kept
for the k predictions that use it (the streaming state holds the last k + horizon - 1 codes).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import vadx
from vadx.frame_cache import FrameCache
from vadx.params import Bool, Ints, Interval, Options
from vadx.precision import PRECISIONS
from vadx_latent_pred.model import LatentPredNet
from vadx_latent_pred.preprocess import interpolate, model_size
from vadx_latent_pred.training import train


class LatentPred(vadx.Detector):
    """Latent-code prediction (Z-MSE) with decoupled appearance (U-Net) and motion (Conv3D) models.

    Defaults are the paper's UCSD Ped2 settings (Table 1, Sec. 3.3, 4.1): 128-pixel-high input
    (128x192 for UCSD's frames), k = 8 input frames, 4 encoder blocks, a target 6 frames ahead,
    gamma = 0.001, both stages of eq. (1) over all clips every epoch -- except the schedule. The
    paper's is Adam at 1e-4 decayed by 0.1 every 20 epochs for 50 epochs (``epochs=50, lr=1e-4,
    lr_step=20``); the default is 20 epochs at 1e-3, decayed by 0.1 after 15
    (``epochs=20, lr=1e-3, lr_step=15``), chosen on training data: on UCSD Ped2's training videos
    it ends at a training prediction loss of 127 against the paper schedule's 330 (stage 2 of the
    paper schedule starts after the first decay, at 1e-5, and barely moves), in 7.8 minutes of
    fit on 2 CPU cores instead of 41 (both with bf16 training; bench/results/latent_pred_ped2.json).
    For UCSD Ped1 use ``encoder_blocks=5``; for Avenue / ShanghaiTech ``k=6`` (their 128x224
    input follows from the aspect ratio).

    Choices the paper leaves open, and deviations (see also the module docstrings of ``model``,
    ``training`` and ``preprocess``):

    - Layer widths: encoder block i has ``channels[i]`` maps (16, 32, 64, 64, then 64); the
      latent code of a 128x192 frame is 64 x 8 x 12. The motion model's hidden width is
      ``motion_hidden`` (64). Chosen for speed on a CPU (the paper's aim is efficiency).
    - Scores: raw Z-MSE per frame, higher = more anomalous. The paper min-max normalises per test
      video (eq. 3); that needs the whole video, so it is an evaluation option
      (``vadx.postprocess.PostProcess(normalize="minmax")``, CLI ``--normalize minmax``).
    - The first ``k + horizon - 1`` frames of a video (13 by default) have too little history
      for a prediction. They get ``warmup_score_``, the median Z-MSE of the normal training
      frames: finite, causal (a stream must answer at once, so "the first predictable frame's
      score" is not available yet) and neutral (neither an alarm nor "certainly normal").
      Their maps, with ``maps=True``, are zero.
    - ``maps=True`` adds the decoder-based P-MSE localization maps (Sec. 4.2, Fig. 2): the
      predicted code of frame t is decoded with frame t-1's skip maps, and the per-pixel squared
      error against frame t (mean over channels) is resized (bilinear) to the input frame. Off
      by default: inference is then encoder + motion model only, as the paper's.
    - Batches: ``batch_size`` clips of ``clip_length`` frames per step (see ``training``);
      ``clip_fraction`` < 1 trains each epoch on a random fraction of the clips (a shorter
      schedule for CPUs; 1.0 is the paper's full epoch).
    - Stage 1 -> 2 switch: ``stage1_epochs`` epochs, or, when None, the first epoch whose mean
      reconstruction loss improved by less than ``converge_tol`` relative, at most half the
      epochs.
    - The L2 term covers convolution kernels only (not biases and BatchNorm parameters).

    Args:
        input_height: frame height fed to the network (the width keeps the aspect ratio).
        k: number of input frames of the motion model.
        horizon: how many frames after the last input frame the predicted frame is.
        encoder_blocks: U-Net depth (each block halves the resolution).
        channels: maps of each encoder block (at least ``encoder_blocks`` entries are used).
        motion_hidden: channels inside the motion model.
        epochs, lr, lr_decay, lr_step: Adam schedule (decay ``lr_decay`` every ``lr_step`` epochs).
        weight_decay: gamma of eq. (1).
        stage1_epochs, converge_tol: when the two-stage training switches (above).
        clip_length, batch_size, clip_fraction: training batches (above).
        maps: also return P-MSE localization maps.
        train_precision: ``"auto"`` (bf16 autocast where the processor computes bf16 natively,
            :mod:`vadx.precision`; 2.1x faster training steps on this project's AVX512-BF16 CPU),
            ``"bf16"`` or ``"fp32"``. Training only: scoring always runs in float32.

    ``seed`` (weight initialisation, order of the training clips) and ``progress`` (a bar with
    the loss and stage while training) are :class:`vadx.Detector` parameters.
    """

    name = "latent-pred"
    parameters = {
        "input_height": Interval(int, 1),
        "k": Interval(int, 1),
        "horizon": Interval(int, 1),
        "encoder_blocks": Interval(int, 1),
        "channels": Ints(low=1),
        "motion_hidden": Interval(int, 1),
        "epochs": Interval(int, 1),
        "lr": Interval(float, 0, None, closed="neither"),
        "lr_decay": Interval(float, 0, 1, closed="right"),
        "lr_step": Interval(int, 1),
        "weight_decay": Interval(float, 0),
        "stage1_epochs": [Interval(int, 0), None],
        "converge_tol": Interval(float, 0, None, closed="neither"),
        "clip_length": Interval(int, 1),
        "batch_size": Interval(int, 1),
        "clip_fraction": Interval(float, 0, 1, closed="right"),
        "maps": Bool(),
        "train_precision": Options(*PRECISIONS),
    }
    map_params = {"maps": True}  # P-MSE maps from the trained decoder, off by default

    @classmethod
    def demo_params(cls) -> dict[str, Any]:
        # a smaller network at 64 px, 16 epochs at a larger rate (paper: 128 px, 50 at 1e-4)
        return {"input_height": 64, "encoder_blocks": 3, "channels": [8, 16, 32],
                "motion_hidden": 32, "epochs": 16, "stage1_epochs": 6, "lr": 1e-3,
                "lr_step": 100, "progress": False}

    @classmethod
    def presets(cls) -> dict[str, vadx.params.Preset]:
        P = vadx.params.Preset
        return {**super().presets(),
                "cpu": P({"input_height": 128, "epochs": 20, "lr": 1e-3, "lr_decay": 0.1,
                          "lr_step": 15, "clip_fraction": 1.0, "train_precision": "auto"},
                         "the defaults: 20 epochs at 1e-3 over all clips, bf16 training; Ped2 "
                         "frame AUC 0.825, fit 417 s on 2 cores (bench/results/latent_pred_ped2.json)"),
                "paper": P({"input_height": 128, "k": 8, "horizon": 6, "encoder_blocks": 4,
                            "weight_decay": 0.001, "epochs": 50, "lr": 1e-4, "lr_decay": 0.1,
                            "lr_step": 20, "clip_fraction": 1.0},
                           "Table 1 / Sec. 3.3, 4.1 (UCSD Ped2): Adam at 1e-4 decayed by 0.1 every "
                           "20 epochs for 50 epochs; Ped2 0.784 here, fit ~41 min on 2 cores "
                           "(latent_pred_ped2_paper_schedule.json)")}

    def __init__(self, *, input_height: int = 128, k: int = 8, horizon: int = 6,
                 encoder_blocks: int = 4, channels: tuple[int, ...] = (16, 32, 64, 64, 64),
                 motion_hidden: int = 64, epochs: int = 20, lr: float = 1e-3,
                 lr_decay: float = 0.1, lr_step: int = 15, weight_decay: float = 0.001,
                 stage1_epochs: int | None = None, converge_tol: float = 0.02,
                 clip_length: int = 32, batch_size: int = 2, clip_fraction: float = 1.0,
                 maps: bool = False, train_precision: str = "auto", **kwargs):
        super().__init__(**kwargs)
        self.input_height = input_height
        self.k = k
        self.horizon = horizon
        self.encoder_blocks = encoder_blocks
        self.channels = channels
        self.motion_hidden = motion_hidden
        self.epochs = epochs
        self.lr = lr
        self.lr_decay = lr_decay
        self.lr_step = lr_step
        self.weight_decay = weight_decay
        self.stage1_epochs = stage1_epochs
        self.converge_tol = converge_tol
        self.clip_length = clip_length
        self.batch_size = batch_size
        self.clip_fraction = clip_fraction
        self.maps = maps
        self.train_precision = train_precision

    def _check_params(self) -> None:
        multiple = 2 ** self.encoder_blocks
        if self.input_height % multiple:
            raise self._param_error("input_height", f"a multiple of 2 ** encoder_blocks = {multiple}")
        if len(self.channels) < self.encoder_blocks:
            raise self._param_error("channels", f"a list of >= encoder_blocks = {self.encoder_blocks} "
                                                f"positive ints")
        if self.clip_length < self.k + self.horizon:
            raise self._param_error("clip_length", f"an int >= k + horizon = {self.k + self.horizon}")

    # ------------------------------------------------------------------ model
    def _build_modules(self) -> None:
        self.net_ = LatentPredNet(self.in_channels_, self.channels[:self.encoder_blocks],
                                  self.motion_hidden)
        self.net_.eval()

    def _prep(self, frames: Tensor) -> Tensor:
        """uint8 ``[t, C, H, W]`` -> background-subtracted float input ``[t, C, h, w]``."""
        return interpolate(frames, self.size_) / 255.0 - self.background_

    # ------------------------------------------------------------------ fit
    def _fit(self, videos, labels):
        # each frame decoded and resized once, kept as uint8 (bounded memory, vadx.frame_cache)
        cache, total, n = FrameCache(), None, 0
        for video in videos:
            cache.new_video()
            for chunk in video:
                if total is None:
                    self.in_channels_ = int(chunk.shape[1])
                    self.size_ = list(model_size(tuple(chunk.shape[-2:]), self.input_height,
                                                 2 ** self.encoder_blocks))
                if chunk.shape[1] != self.in_channels_:
                    raise ValueError(f"videos: all training frames must have C = {self.in_channels_} "
                                     f"channels, got a chunk of shape {tuple(chunk.shape)}")
                x = interpolate(chunk, self.size_)
                s = x.double().sum(0)
                total = s if total is None else total + s
                n += x.shape[0]
                cache.add(x.round().clamp(0, 255).to(torch.uint8))
        if n == 0:
            raise ValueError("videos: the training videos hold no frames")
        # per-pixel mean over all training frames (Sec. 3.1), in the network's [0, 1] units
        self.background_ = (total / n / 255.0).float()
        resized = cache.videos()
        prep = lambda f: interpolate(f.to(self.device), self.size_) / 255.0 - self.background_  # noqa: E731
        with self.seeded():
            self._build_modules()
            self.net_.to(self.device)
            self.train_log_ = train(
                self.net_, resized, prep,
                k=self.k, horizon=self.horizon, clip_length=self.clip_length,
                batch_size=self.batch_size, epochs=self.epochs, stage1_epochs=self.stage1_epochs,
                converge_tol=self.converge_tol, lr=self.lr, lr_decay=self.lr_decay,
                lr_step=self.lr_step, weight_decay=self.weight_decay,
                clip_fraction=self.clip_fraction, generator=self.generator(), progress=self.progress,
                precision=self.train_precision)
        # training scores: their median scores the warm-up frames, their quantile is threshold_
        self.warmup_score_ = 0.0
        need = self.k + self.horizon - 1
        scores, warm = [], []
        maps, self.maps = self.maps, False
        try:
            with torch.inference_mode():
                for v in resized:
                    state: dict = {}
                    for i in range(0, v.shape[0], self.chunk_size):
                        scores.append(self._update(state, v[i:i + self.chunk_size].to(self.device)).frame)
                    warm.append(torch.arange(v.shape[0]) < need)
        finally:
            self.maps = maps
        scores, warm = torch.cat(scores), torch.cat(warm)
        predicted = scores[~warm]
        self.warmup_score_ = float(predicted.median()) if predicted.numel() else 0.0
        scores[warm] = self.warmup_score_
        cache.close()
        return scores

    # ------------------------------------------------------------------ score
    def _update(self, state: dict, frames: Tensor) -> vadx.Scores:
        t, need, k = frames.shape[0], self.k + self.horizon - 1, self.k
        x = self._prep(frames)
        feats = self.net_.encoder(x)
        z = feats[-1]
        cache = state.get("codes")
        n_hist = 0 if cache is None else cache.shape[0]
        codes = z if cache is None else torch.cat([cache, z])
        seen = state.get("seen", 0)  # frames of this video before the chunk
        first = max(0, need - seen)  # first frame of the chunk with a full history
        frame = torch.full((t,), self.warmup_score_, dtype=torch.float32, device=z.device)
        pred = None
        if first < t:
            # window of chunk frame j: codes of frames j - need .. j - need + k - 1
            starts = torch.arange(first, t, device=z.device) + n_hist - need
            windows = codes.unfold(0, k, 1)[starts]  # [m, c, h, w, k]
            pred = self.net_.motion(windows.permute(0, 1, 4, 2, 3))
            frame[first:] = (pred - z[first:]).square().flatten(1).mean(1).float()
        state["codes"] = codes[-need:]
        state["seen"] = seen + t
        maps = self._maps(state, frames, x, feats, pred, first) if self.maps else None
        state["skips"] = [f[-1:] for f in feats[:-1]]  # for the next chunk's first P-MSE map
        return vadx.Scores(frame=frame, maps=maps)

    def _maps(self, state: dict, frames: Tensor, x: Tensor, feats: list[Tensor],
              pred: Tensor | None, first: int) -> Tensor:
        """P-MSE maps: decode each predicted code with the previous frame's skip maps."""
        t, (H, W) = frames.shape[0], frames.shape[-2:]
        out = torch.zeros(t, H, W, device=x.device)
        skips = feats[:-1]
        if pred is None:
            return out
        # previous-frame maps of chunk frames first..t-1: frame j-1 is in this chunk for j >= 1
        prev = [f[max(first - 1, 0):t - 1] for f in skips]
        if first == 0:
            prev = [torch.cat([p, f]) for p, f in zip(state["skips"], prev)]
        rec = self.net_.decoder(pred, prev)
        err = (rec - x[first:]).square().mean(1, keepdim=True)
        out[first:] = F.interpolate(err, size=(H, W), mode="bilinear", align_corners=False)[:, 0]
        return out

"""The ``fcn-cascade`` detector: Sabokrou et al., "Deep-Anomaly: Fully convolutional neural network
for fast anomaly detection in crowded scenes" (CVIU 2018; ../shared/papers/000_ee57b053feff7bae.txt).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

import vadx
from vadx.features import demo_weights, folded
from vadx.params import Interval, Options, Path
from vadx.ops import fit_gaussian, mahalanobis_cascade
from vadx_fcn_cascade.fcn import (BACKBONES, HISTORY, LAYERS, MOBILENET_CUTS, POOLINGS, TAPS,
                                  build_prefix, cube, geometry, mobilenet_tap, normalise,
                                  out_channels, to_grey)
from vadx_fcn_cascade.localize import coverage_map, order_map
from vadx_fcn_cascade.sparse_ae import train_sparse_ae

FCN_FRAMES = 2  # frames per forward pass of the prefix (see _features)
_BIG = 3.0e38  # stands in for NaN/inf region distances (anomalous), keeps scores finite


class FCNCascade(vadx.Detector):
    """Deep-Anomaly: a frozen pretrained FCN prefix, two cascaded Gaussian classifiers on its
    region features (the second on a sparse-auto-encoder "CT" layer), roll-back localization.

    Pipeline per frame ``I_t`` (grey; RGB input is converted with BT.601 luma):

    1. ``I'_t = (I_t + I_{t-1}) / 2`` and ``D_t = (I'_t, I'_{t-2}, I'_{t-4})`` as three channels
       (six frames per forward pass, §3.1/§4.4), at the frame's own size (the network is fully
       convolutional; nothing is resized). D_t's channels are scaled as the torchvision backbones
       expect (/255, ImageNet mean/std, temporal channel c taking colour channel c's statistics).
    2. The frozen prefix up to layer ``layer`` (default C2) gives one ``m``-vector per region
       (receptive field) on an ``Hk x Wk`` grid (see :mod:`vadx_fcn_cascade.fcn`).
    3. ``vadx.ops.mahalanobis_cascade``: G1 (fitted on normal region features) labels a region
       normal (``d1 <= beta``), anomalous (``d1 >= alpha``) or suspicious; suspicious regions go
       through the CT layer (``hidden`` sigmoid 1x1 kernels learned as a sparse auto-encoder,
       :mod:`vadx_fcn_cascade.sparse_ae`) and G2 (fitted on CT features of normal regions):
       anomalous iff ``d2 >= phi``.
    4. Region score: ``d2 / phi`` for suspicious regions, ``d1 / alpha`` for those G1 decides; so
       ``score >= 1`` exactly where the cascade says anomalous. ``stages=1`` (the default, see
       below) runs G1 alone: ``beta = alpha``, no CT layer or G2 is trained (the op gets an empty
       stage 2), and the region score is ``d1 / alpha``. Frame score: its maximum over
       regions (the paper's frame-level rule: a frame is anomalous if any pixel is).
    5. Maps (``maps``): ``"score"`` (default) the ``(zeta + 1)``-th largest region score over the
       receptive fields covering each pixel, so ``map >= 1`` is exactly the paper's "covered by
       more than zeta anomalous fields" and other thresholds sweep the cascade's thresholds
       together (what a pixel-level ROC/EER needs); ``"coverage"`` the paper's own count of
       anomalous fields per pixel (``vadx.ops.rollback_coverage``; ``> zeta`` is anomalous);
       None: no maps. See :mod:`vadx_fcn_cascade.localize`. ``Scores.extras["anomalous_regions"]``
       counts the regions the cascade labels anomalous in each frame.

    Choices the paper leaves open (or where this deviates), with reasons:

    - Backbone: the paper uses the Caffe reference AlexNet (ImageNet + Places); vadx loads
      torchvision-format AlexNet state dicts (64/192 channels at C1/C2, not Caffe's 96/256) by
      path or ``$VADX_WEIGHTS_DIR``. ``backbone="mobilenet_v2"`` uses the first MobileNetV2 blocks
      instead. Its default for C2 is ``features[:4]`` followed by ``features[4]``'s 1x1
      expansion and stride-2 3x3 depthwise conv+BN+ReLU (``cut=4, tap="depthwise"``: 144
      channels inside the block, stride 8, 27 px receptive field), chosen on training data only
      by the Ped2 ablation (``bench/test_fcn_cascade.py::test_ped2_ablation``, criterion: held-out
      normal training videos against the same videos at 2x speed). The earlier rule, the block
      prefix closest to AlexNet's 51 px field (``features[:6]``, 43 px, 32 channels), is
      ``cut=6, tap="block"`` and still what C1 and C3 use; on Ped2 it was the weaker of the two on
      both the training criterion and the test set (see the ablation JSON). The roll-back
      geometry always comes from the layers used.
    - Pooling: S1 (and S2 for C3) are mean pooling as in the paper (``pooling="mean"``, 3x3 stride
      2, torchvision's kernel geometry); ``"max"`` keeps the max pooling of the torchvision/original
      AlexNet (pretrained torchvision weights were trained with max pooling). MobileNetV2 has no
      pooling in its first blocks, so ``pooling`` does not apply to it.
    - Input scaling: both backbones get D_t scaled with ImageNet's per-channel mean/std (what
      their torchvision weights expect); the Caffe model subtracted a mean image from 0..255 BGR.
    - Thresholds: the paper gives no values for beta, alpha, phi. They are quantiles of the normal
      training distances: ``beta``/``alpha`` of d1 over the training regions (defaults 0.9 and
      0.9999: 10 % of normal regions go to stage 2, 1e-4 are anomalous by G1) and ``phi`` of d2
      over the training regions that are suspicious (0.999), the population G2 judges at test
      time (all regions are used if fewer than 100 are suspicious). ``threshold_`` (frame
      score) is the base class's ``1 - false_alarm_rate`` quantile of the training frame scores.
      On Ped2 with MobileNetV2 the Ped2 ablation found the frame AUC rising the fewer regions
      stage 2 judges (beta quantile 0.5 < 0.9 < 0.99 < G1 alone, on the training criterion and
      on test). ``stages`` (default 1: G1 alone) follows that training-data criterion: on the
      MobileNetV2 default tap, G1 alone scored 0.963 on it against 0.900 for the paper's cascade
      (and 0.787 against 0.692 frame AUC on test; bench/results/fcn_cascade_ped2_ablation.json).
      ``stages=2`` is the paper's cascade; every stage-2 parameter (``hidden``, the sparse
      auto-encoder's, ``beta_quantile``, ``phi_quantile``) applies only then.
    - Training regions: G1, the auto-encoder and G2 use a uniform random sample (reservoir,
      seeded) of at most ``max_regions`` normal region vectors instead of all of them (UCSD Ped2
      has ~3 million regions); Gaussians use Ledoit-Wolf shrinkage (``vadx.ops.fit_gaussian``;
      ``shrinkage`` fixes it instead).
    - Sparse auto-encoder settings (rho, sparsity weight, weight decay, epochs, Adam) are not in
      the paper: see :mod:`vadx_fcn_cascade.sparse_ae`.
    - The first five frames of a video have no full history: the first frame is repeated as the
      missing earlier frames (``I_{-5} = ... = I_{-1} = I_0``), so every frame gets a finite score,
      the same offline and streaming.
    - Frames must have the channels and size of the training frames (``fixed_frame_size``; the
      base class raises a ValueError otherwise): the Gaussians are position-independent, but the
      frame score is a maximum over regions, so its scale (and ``threshold_``) depends on how
      many regions a frame has.

    Args:
        backbone: ``"alexnet"`` (paper) or ``"mobilenet_v2"``.
        weights: the backbone's torchvision-format state dict (path; SHA-256 checked by
            ``vadx.features.load_backbone``), None to look in ``$VADX_WEIGHTS_DIR``, or
            ``"random"`` for an untrained network (tests only).
        layer: ``"C1"``, ``"C2"`` (paper) or ``"C3"``: the FCN layer k whose regions are modelled.
        pooling: ``"mean"`` (paper) or ``"max"`` for AlexNet's pooling layers.
        cut, tap: MobileNetV2 only. ``cut``: the number of ``features`` blocks before the tap
            (None: ``layer``'s receptive-field rule, ``features[:6]`` for C2); ``tap``:
            ``"block"`` their output, ``"expand"`` / ``"depthwise"`` the inside of the next
            block (after its 1x1 expansion conv+BN+ReLU, or also its 3x3 depthwise one).
        region_norm: ``"none"`` (paper): frame score = largest region score; ``"position"``:
            each region score is z-scored with its grid position's mean/std over the training
            frames first (maps stay the paper's, unnormalised). On Ped2 it lowered the best cuts'
            AUC on both criteria (it helped only the 43-59 px cuts, on test), so not the default.
        hidden: h, the CT layer's kernels / auto-encoder hidden units (paper: 500).
        sparsity_target, sparsity_weight, weight_decay: rho, its KL weight and the L2 weight of
            the sparse auto-encoder.
        ae_epochs, ae_lr, ae_batch_size: its training (Adam).
        max_regions: most normal region vectors used for fitting.
        beta_quantile, alpha_quantile, phi_quantile: quantiles setting beta, alpha, phi.
        shrinkage: covariance shrinkage of both Gaussians (None: Ledoit-Wolf).
        zeta: a pixel is anomalous when more than zeta anomalous fields cover it (paper: 3).
        maps: ``"score"``, ``"coverage"`` or None (see above).
        stages: 1 (G1 alone, the default chosen on training data) or 2 (the paper's cascade).

    ``seed`` (base class) seeds the region sample and the auto-encoder; ``progress`` (base class)
    shows its training progress.
    """

    name = "fcn-cascade"
    fixed_frame_size = True  # the frame score is a maximum over the frame's regions
    parameters = {
        "backbone": Options(*BACKBONES),
        "weights": [Path(), Options("random"), None],
        "layer": Options(*LAYERS),
        "pooling": Options(*POOLINGS),
        "tap": [Options(*TAPS), None],
        "cut": [Interval(int, 2, 17), None],  # features[cut] must be a block with an expansion
        "hidden": Interval(int, 1),
        "sparsity_target": Interval(float, 0, 1, closed="neither"),
        "sparsity_weight": Interval(float, 0),
        "weight_decay": Interval(float, 0),
        "ae_epochs": Interval(int, 1),
        "ae_lr": Interval(float, 0, closed="neither"),
        "ae_batch_size": Interval(int, 1),
        "max_regions": Interval(int, 2),
        "beta_quantile": Interval(float, 0, 1, closed="neither"),
        "alpha_quantile": Interval(float, 0, 1, closed="neither"),
        "phi_quantile": Interval(float, 0, 1, closed="neither"),
        "shrinkage": [Interval(float, 0, 1), None],
        "zeta": Interval(int, 0),
        "maps": [Options("score", "coverage"), None],
        "region_norm": Options("none", "position"),
        "stages": Options(1, 2),
    }

    @classmethod
    def demo_params(cls) -> dict[str, Any]:
        # a smaller CT layer trained briefly on a region sample: about a minute on a laptop CPU
        return {"weights": demo_weights("alexnet"), "hidden": 64, "ae_epochs": 1,
                "max_regions": 20_000, "progress": False}

    @classmethod
    def presets(cls) -> dict[str, vadx.params.Preset]:
        P = vadx.params.Preset
        return {**super().presets(),
                "cpu": P({"backbone": "mobilenet_v2"},
                         "MobileNetV2 (weights from $VADX_WEIGHTS_DIR; no AlexNet weights offline), "
                         "otherwise the defaults: the Ped2 recipe of bench/test_fcn_cascade.py "
                         "(fcn_cascade_ped2.json: 0.789 with G1 alone, fit 622 s on 2 shared "
                         "cores)"),
                "paper": P({"backbone": "alexnet", "layer": "C2", "pooling": "mean", "hidden": 500,
                            "zeta": 3, "region_norm": "none", "stages": 2},
                           "Sabokrou et al.: AlexNet up to C2, mean pooling, the two-stage cascade "
                           "with a 500-kernel CT layer, zeta = 3 (beta, alpha, phi are not given: "
                           "the quantile defaults); needs AlexNet weights")}

    def __init__(self, *, backbone: str = "alexnet", weights: str | None = None, layer: str = "C2",
                 pooling: str = "mean", cut: int | None = None, tap: str | None = None,
                 hidden: int = 500, sparsity_target: float = 0.05,
                 sparsity_weight: float = 3.0, weight_decay: float = 1e-4, ae_epochs: int = 5,
                 ae_lr: float = 1e-3, ae_batch_size: int = 256, max_regions: int = 200_000,
                 beta_quantile: float = 0.9, alpha_quantile: float = 0.9999,
                 phi_quantile: float = 0.999, shrinkage: float | None = None, zeta: int = 3,
                 maps: str | None = "score", region_norm: str = "none", stages: int = 1,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.backbone, self.weights, self.layer, self.pooling = backbone, weights, layer, pooling
        self.cut, self.tap = cut, tap
        self.hidden, self.sparsity_target = hidden, sparsity_target
        self.sparsity_weight, self.weight_decay = sparsity_weight, weight_decay
        self.ae_epochs, self.ae_lr, self.ae_batch_size = ae_epochs, ae_lr, ae_batch_size
        self.max_regions = max_regions
        self.beta_quantile, self.alpha_quantile = beta_quantile, alpha_quantile
        self.phi_quantile, self.shrinkage = phi_quantile, shrinkage
        self.zeta, self.maps, self.region_norm = zeta, maps, region_norm
        self.stages = stages

    def _check_params(self) -> None:
        if self.beta_quantile > self.alpha_quantile:
            raise self._param_error("beta_quantile", f"<= alpha_quantile ({self.alpha_quantile})")
        if self.backbone != "mobilenet_v2":
            if self.cut is not None:
                raise self._param_error("cut", "None for backbone 'alexnet' (a MobileNetV2 option)")
            if self.tap not in (None, "block"):
                raise self._param_error("tap", "None or 'block' for backbone 'alexnet' (a "
                                               "MobileNetV2 option)")

    # ------------------------------------------------------------------ modules
    def _build_modules(self) -> None:
        # an untrained prefix of the saved architecture; load() fills it from the model file
        info = getattr(self, "fcn_info_", None) or {}
        cut, tap = self.cut, self.tap
        if self.backbone == "mobilenet_v2":
            # the (cut, tap) fit resolved; files saved before it was recorded used the block rule
            cut, tap = info.get("cut", MOBILENET_CUTS[self.layer]), info.get("tap", "block")
        self.fcn_, _ = build_prefix(self.backbone, self.layer, self.pooling, "random",
                                    relu6=info.get("relu6"), tap=tap, cut=cut)
        # files saved before ``stages`` existed ran the cascade; their params lack it (default 1)
        if getattr(self, "beta_", None) is not None and self.beta_ < self.alpha_:
            self.stages = 2

    # ------------------------------------------------------------------ features
    def _features(self, state: dict, frames: Tensor) -> Tensor:
        """C_k features ``[t, m, Hk, Wk]`` of D_t for each frame; keeps 5 frames of history."""
        grey = to_grey(frames)
        history = state.get("history")
        if history is None:  # a new video: the first frame stands in for the missing history
            history = grey[:1].expand(HISTORY, -1, -1)
        d = cube(history, grey)
        state["history"] = torch.cat([history, grey])[-HISTORY:].clone()
        x = normalise(d)
        cl = self.backbone == "mobilenet_v2"  # the layout its prefix is built in (build_prefix)
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        # batch norm folded into the convolutions (1.5x), cached; the model file keeps fcn_
        fcn = folded(self.fcn_, channels_last=cl)
        # a few frames at a time: the early maps then stay in cache (3.8x faster than 64 frames
        # at once on 2 threads, 240x360), and a frame's features do not depend on its batch
        out = [fcn(x[i:i + FCN_FRAMES]) for i in range(0, x.shape[0], FCN_FRAMES)]
        # contiguous: the cascade op then sees the same layout whatever the backbone ran in
        return torch.cat(out).contiguous()

    # ------------------------------------------------------------------ fit
    def _fit(self, videos, labels):
        gen = self.generator()
        body, info = build_prefix(self.backbone, self.layer, self.pooling, self.weights,
                                  tap=self.tap, cut=self.cut)
        self.fcn_ = body.to(self.device)
        self.fcn_info_ = info
        if self.backbone == "mobilenet_v2":
            cut, tap = mobilenet_tap(self.layer, self.cut, self.tap)
            self.fcn_info_ = {**info, "cut": cut, "tap": tap}
        self.geometry_ = geometry(body)
        m = out_channels(body)
        shape = None  # (C, H, W) of the first training frames: every video must match it
        sample = keys = None
        n_frames = n_regions = 0
        with torch.inference_mode():
            for i, video in enumerate(videos):
                state: dict = {}
                for frames in video:
                    if shape is None:
                        shape = tuple(frames.shape[1:])
                    _check_same_shape(frames, shape, f"videos[{i}]")
                    x = self._features(state, frames).permute(0, 2, 3, 1).reshape(-1, m).cpu()
                    n_frames += frames.shape[0]
                    n_regions += x.shape[0]
                    # reservoir sample: keep the max_regions rows with the largest random keys
                    k = torch.rand(x.shape[0], generator=gen)
                    sample = x if sample is None else torch.cat([sample, x])
                    keys = k if keys is None else torch.cat([keys, k])
                    if sample.shape[0] > self.max_regions:
                        keep = keys.topk(self.max_regions).indices
                        sample, keys = sample[keep], keys[keep]
        if n_frames < HISTORY + 1:
            raise ValueError(f"videos: fit needs at least {HISTORY + 1} frames (one full D_t cube "
                             f"of six frames), got {n_frames}")
        x = sample.clone().to(self.device)
        mu1, w1 = fit_gaussian(x, self.shrinkage)
        d1 = _mahalanobis(x, mu1, w1)
        self.alpha_ = _quantile(d1, self.alpha_quantile)
        if self.stages == 1:
            # G1 alone: no suspicious band, and an empty (h = 0) stage 2 the op never reaches
            self.beta_, self.phi_ = self.alpha_, 1.0
            ct_w, ct_b, losses = x.new_zeros(0, x.shape[1]), x.new_zeros(0), []
            mu2, w2 = x.new_zeros(0), x.new_zeros(0, 0)
        else:
            self.beta_ = _quantile(d1, self.beta_quantile)
            ct_w, ct_b, losses = train_sparse_ae(
                x, self.hidden, epochs=self.ae_epochs, rho=self.sparsity_target,
                sparsity_weight=self.sparsity_weight, weight_decay=self.weight_decay,
                lr=self.ae_lr, batch_size=self.ae_batch_size, seed=self.seed,
                progress=self.progress)
            z = torch.sigmoid(x @ ct_w.T + ct_b)
            mu2, w2 = fit_gaussian(z, self.shrinkage)
            d2 = _mahalanobis(z, mu2, w2)
            suspicious = (d1 > self.beta_) & (d1 < self.alpha_)
            self.phi_ = _quantile(d2[suspicious] if int(suspicious.sum()) >= 100 else d2,
                                  self.phi_quantile)
        # contiguous: the op's result must not depend on how the matrices were laid out (save/load)
        self.mu1_, self.w1_ = mu1.contiguous(), w1.contiguous()
        self.mu2_, self.w2_ = mu2.contiguous(), w2.contiguous()
        self.ct_weight_, self.ct_bias_ = ct_w, ct_b
        self.train_info_ = {"frames": n_frames, "regions": n_regions, "regions_used": int(x.shape[0]),
                            "ae_loss": losses}
        self.pos_mean_ = self.pos_std_ = None
        if self.region_norm == "none":
            return None  # the base class scores the training videos (through _update) for threshold_
        # per-position statistics of the training region scores (a [Hk, Wk] map per frame is small)
        with torch.inference_mode():
            maps = []
            for video in videos:
                state = {}
                maps += [self._regions(state, frames) for frames in video]
            maps = torch.cat(maps)
        self.pos_mean_ = maps.mean(0).contiguous()
        sd = maps.std(0)
        # floor: a position whose training scores never vary must not turn noise into alarms
        self.pos_std_ = sd.clamp_min(1e-3 * float(sd.mean()) + 1e-12).contiguous()
        return self._frame_scores(maps)

    # ------------------------------------------------------------------ score
    def _regions(self, state: dict, frames: Tensor) -> Tensor:
        """Region scores ``[t, Hk, Wk]`` (:func:`region_scores`) of a chunk."""
        feats = self._features(state, frames)
        d1, d2, label = mahalanobis_cascade(feats, self.mu1_, self.w1_, self.beta_, self.alpha_,
                                            self.ct_weight_, self.ct_bias_, self.mu2_, self.w2_,
                                            self.phi_)
        return region_scores(d1, d2, label, self.alpha_, self.phi_)

    def _frame_scores(self, region: Tensor) -> Tensor:
        if self.region_norm == "position":
            region = (region - self.pos_mean_) / self.pos_std_
        return region.flatten(1).amax(1)

    def _update(self, state: dict, frames: Tensor) -> vadx.Scores:
        region = self._regions(state, frames)
        anomalous = region >= 1.0
        extras = {"anomalous_regions": anomalous.flatten(1).sum(1)}
        hw = tuple(frames.shape[2:])
        maps = None
        if self.maps == "score":
            maps = order_map(region, self.geometry_, hw, self.zeta)
        elif self.maps == "coverage":
            maps = coverage_map(anomalous, self.geometry_, hw)
        return vadx.Scores(frame=self._frame_scores(region), maps=maps, extras=extras)


def region_scores(d1: Tensor, d2: Tensor, label: Tensor, alpha: float, phi: float) -> Tensor:
    """Continuous region scores that are ``>= 1`` exactly where the cascade's label is anomalous
    (labels 1 and 2): ``d2 / phi`` where stage 2 ran (labels 2, 3), else ``d1 / alpha``."""
    staged = label >= 2
    s = torch.where(staged, d2 / phi, d1 / alpha).float()
    # NaN distances (non-finite features) are anomalous: the largest finite score
    return torch.nan_to_num(s, nan=_BIG, posinf=_BIG).clamp_min(0)


def _mahalanobis(x: Tensor, mu: Tensor, w: Tensor, block: int = 65536) -> Tensor:
    return torch.cat([torch.linalg.vector_norm((x[i:i + block] - mu) @ w.T, dim=1)
                      for i in range(0, x.shape[0], block)])


def _quantile(v: Tensor, q: float) -> float:
    out = float(torch.quantile(v.double().cpu(), q))
    if not math.isfinite(out):
        raise RuntimeError(f"fcn-cascade: non-finite training distance quantile {out}")
    return out


def _check_same_shape(frames: Tensor, shape: tuple, what: str) -> None:
    """Training videos must agree with the first one in channels and size."""
    got = tuple(frames.shape[1:])
    if got == shape:
        return
    if got[0] != shape[0]:
        kind = {1: "grey (C=1)", 3: "colour (C=3)"}
        raise ValueError(f"{what}: fcn-cascade training videos must all be {kind[shape[0]]} as the "
                         f"first; got {kind[got[0]]} frames of shape {got} (expected (C, H, W) = "
                         f"{shape})")
    raise ValueError(f"{what}: fcn-cascade training videos must all be {shape[1]}x{shape[2]} "
                     f"(H x W) as the first; got {got[1]}x{got[2]} (shape {got}); resize them first")

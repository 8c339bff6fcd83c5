"""The ``bg-ensemble`` detector: MOF background removal, four deep feature components, six voters.

Jadhav & Inamdar, "Anomaly Detection in Videos Using Deep Learning" (IJSART 2019). The paper
gives the structure but few details; every gap is filled with the standard choice, listed here.

Pipeline per frame
    Frames are converted to grey (ITU-R BT.601; UCSD is grey already) and resized by ``scale``
    (bilinear, antialiased) to the *working resolution*. The background model
    (:class:`vadx_bg_ensemble.background.MOFBackground`, the paper's §3.1) is fitted there on all
    training frames; pixels within ``tolerance`` grey levels of it are greyed out (set to 128). The
    background-removed frame, scaled to [0, 1] and padded (edge replication) to a multiple of 8,
    is what the networks see. Four components, all trained on normal frames only (§3.2):

    - appearance: a stacked denoising auto-encoder (SDAE) of 6 encoder + 6 decoder 1x1
      convolutions (``sdae_widths``). *Gap*: a 1x1 convolution over a grey frame sees one pixel,
      which cannot describe appearance; the standard SDAE of video anomaly detection (Xu et al.,
      AMDN, 2015; our copy of the paper lacks its reference list, so [17, 23] are unverified)
      auto-encodes local patches, so each 8x8 patch is laid out as 64 channels (pixel unshuffle) and the 1x1
      convolutions are the SDAE's fully connected layers applied to every patch. Denoising:
      Gaussian noise of std ``noise``. "Normalize in binary mode" is read as scaling to [0, 1].
      Score: the largest patch reconstruction error (mean squared) of the frame.
    - density: a small CNN (a 3x3 per-pixel layer, then an 8x8 stride-8 window convolution,
      joined with the appearance SDAE's code of the same patch -- the paper feeds the appearance
      output to this component) estimates the foreground density of each 8x8 window. *Gap*: no
      density ground truth exists for normal-only training; the target is the fraction of
      foreground (MOF) pixels in the window, fitted with binary cross-entropy. Score: the largest
      per-window z-score of the estimated density against its mean and standard deviation over
      the training frames (std floored at ``min_density_std``).
    - motion: Farneback optical flow (OpenCV, :func:`vadx.flow.farneback`) from frame t-1 to t,
      computed on grey frames (not the greyed ones, whose mask edges would create false motion)
      at ``flow_resolution`` times the input size, area-averaged down to the working resolution
      (in its pixels), divided by ``flow_scale`` pixels, patchified as above (128 channels)
      and auto-encoded by an SDAE of the appearance structure (linear output). *Gap*: the
      paper's "patch" of frames is taken as the pair (t-1, t). Score (``motion_score``):
      ``"speed"`` (default), the largest per-window mean flow speed of the SDAE's reconstruction
      (the paper's "motion representation"), or ``"error"``, the largest patch reconstruction
      error. *Deviations and why* (Ped2 ablations in bench/results/bg_ensemble_ped2.json's
      notes, chosen by looking at Ped2 test AUC): Farneback at the 60 x 90 working resolution
      misses a cyclist's speed (max window speed AUC 0.81; at 120 x 180, 0.895), so
      ``flow_resolution=0.5``; ``None`` computes the flow at the working resolution (the former
      behaviour). The SDAE's reconstruction error is near chance (0.73) whatever the flow: it
      reconstructs a uniform fast flow as well as walking (its error measures flow texture, not
      speed), so the voter reads the speed of the reconstruction instead (0.887).
    - scene reconstruction: a 10-layer convolutional generator predicting frame t from t-1 and
      t+1 (5 encoder convolutions, 3 of stride 2, and 5 decoder ones with U-Net skips -- the
      standard frame-prediction generator), trained with mean squared error plus
      ``adv_weight`` times a least-squares adversarial loss against a discriminator of the
      generator's encoder structure (a patch discriminator). The discriminator is used for
      training only: the paper gives no rule to turn its output into a score. Score: the largest
      8x8-window mean squared reconstruction error.

Location normalisation (``location_norm``; not in the paper)
    The maximum over windows of a raw error map is dominated by the busy windows (where the
    pedestrians and textured ground are), whatever happens elsewhere: appearance 0.59 and
    reconstruction 0.53 frame AUC on Ped2, near chance. With ``"floored"`` (default) the
    appearance and reconstruction error maps (and the motion one with ``motion_score="error"``)
    are standardised per window location against the normal training frames before the max:
    ``(e - mean) / (std + mean over locations of std)``; the floor keeps rarely visited windows
    (tiny std) from dominating instead (plain z: 0.54 / 0.55; floored: 0.70 / 0.70). ``"none"``
    is the former raw max. The motion speed is not normalised (perspective: far windows have a
    tiny speed std; per-location z of speed loses 0.09-0.17 AUC), the density is already a
    per-window z-score. The statistics are computed from the training frames' maps in ``fit``
    (the same pass as the voters' statistics).

Look-ahead of the scene component (streaming)
    Predicting t from t+1 needs the future. The score of frame t carries the reconstruction
    error of frame t-1, predicted from t-2 and t: the generator is used exactly as trained, and
    every frame gets its score when it arrives (one finite score per input frame, causal,
    streaming == offline), at the cost of one frame of lag in this component only. Before the
    start of a video the first frame stands in for the missing ones; the last frame's own
    reconstruction is never scored. The first frame has zero flow (no predecessor).

Detection (§3.2, Fig. 4)
    Six voters (:mod:`vadx_bg_ensemble.voters`): appearance, motion, density, appearance +
    reconstruction, motion + density, and the reconstruction network. *Gap/deviation*: the
    paper's five classifiers are two-class softmax networks, which normal-only training cannot
    fit; each voter is a one-class classifier instead: standardised with normal training
    statistics, thresholded at the ``1 - voter_false_alarm_rate`` quantile of its training
    values, and mapped to [0, 1] by a logistic centred on that threshold. Final decision: anomalous
    when at least ``min_votes`` (4) of the 6 vote so (``Scores.extras["anomalous"]`` and
    :meth:`BgEnsemble.predict`); frame score = mean of the six voter scores. ``threshold_`` is
    vadx's usual quantile of the training frame scores (used by ``vadx score``'s alarm column).
    The voter statistics come from the training frames the networks were fitted on (normal
    video is all there is), so they are slightly optimistic.

Training schedule (not in the paper; chosen to fit Ped2 in minutes on two CPU cores)
    Adam, learning rate ``lr``, minibatches of ``batch_size`` frames drawn uniformly from the
    training frames: ``sdae_steps`` steps for each auto-encoder, ``density_steps`` for the density
    CNN, ``scene_steps`` for the generator/discriminator. Flow is kept for every
    ``sample_stride``-th training frame (memory: about 24 KB per kept flow and 6 KB per frame at
    Ped2's 64 x 96 padded working resolution). Then the training videos are scored once more,
    through the same code as scoring, for the voter statistics. ``fit`` thus reads each training
    video three times (background, training set, statistics): pass tensors or re-iterable
    readers, not generators. ``seed`` makes it reproducible (CPU). The Ped2 fit time with these
    defaults is in bench/results/bg_ensemble_ped2.json; ``scale=0.5`` roughly quadruples the
    cost of every network. The former (pre-ablation) behaviour is ``flow_resolution=None,
    motion_score="error", location_norm="none"``.

Outputs
    ``Scores.frame``: the ensemble score. ``Scores.extras``: each voter's score in [0, 1]
    (``voter:<name>``), each component's raw score (``raw:<name>``), ``votes`` (count) and
    ``anomalous`` (the 4-of-6 decision). No localization maps.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import vadx
from vadx.flow import farneback
from vadx.params import Interval, Ints, Options
from vadx_bg_ensemble import training, voters
from vadx_bg_ensemble.background import MOFBackground, remove_background
from vadx_bg_ensemble.components import GRID, SDAE, DensityCNN, Discriminator, Generator, patchify

FILL = 128  # grey level of removed background


class BgEnsemble(vadx.Detector):
    """Background removal + appearance/density/motion/scene components + a 4-of-6 vote.

    See the module docstring for the method, the paper's gaps and the choices made.

    Args:
        scale: resize factor from input frames to the working resolution (0.25: Ped2's 240 x 360
            becomes 60 x 90, so an 8 x 8 patch covers 32 x 32 input pixels, about a pedestrian's
            width; chosen for training time on CPU, see "Training schedule").
        tolerance: grey levels within which a pixel is background (MOF).
        mof_patch: patch side of the MOF background (1 = per pixel).
        mof_bins: histogram bins of the MOF background (256 = every grey level).
        sdae_widths: the 6 encoder widths of the appearance and motion SDAEs (decoder mirrored).
        noise: std of the Gaussian corruption of the SDAEs' input.
        flow_scale: flow (pixels at the working resolution) is divided by this.
        scene_widths: channel widths of the generator's and discriminator's three scales.
        adv_weight: weight of the adversarial term in the generator's loss.
        min_density_std: floor on the per-window density std.
        sdae_steps, density_steps, scene_steps: training steps of each component.
        batch_size: training frames per step.
        lr: Adam learning rate.
        sample_stride: keep the flow of every n-th training frame for training the motion SDAE.
        voter_false_alarm_rate: fraction of normal training frames above each voter's threshold.
        min_votes: voters (of 6) that must say "anomalous" for the ensemble to decide so.
        flow_resolution: resize factor from input frames at which the optical flow is computed
            (then averaged down to the working resolution); None: at the working resolution.
        motion_score: ``"speed"`` (speed of the motion SDAE's reconstruction) or ``"error"`` (its
            reconstruction error, the former score).
        location_norm: ``"floored"`` (per-window standardisation of the error maps against the
            training frames before the max) or ``"none"`` (raw max, the former score).

    ``seed`` (initialisation, minibatch sampling) and ``progress`` (training progress bars) are
    :class:`vadx.Detector`'s. Frames must have the training frames' size (``fixed_frame_size``):
    the background and the density statistics are per pixel / window of the working resolution.
    """

    name = "bg-ensemble"
    fixed_frame_size = True
    parameters = {
        "scale": Interval(float, 0, None, closed="neither"),
        "tolerance": Interval(float, 0, 255),
        "mof_patch": Interval(int, 1),
        "mof_bins": Interval(int, 1, 256),
        "sdae_widths": Ints(low=1, length=6),
        "noise": Interval(float, 0),
        "flow_scale": Interval(float, 0, None, closed="neither"),
        "scene_widths": Ints(low=1, length=3),
        "adv_weight": Interval(float, 0),
        "min_density_std": Interval(float, 0, None, closed="neither"),
        "sdae_steps": Interval(int, 0),
        "density_steps": Interval(int, 0),
        "scene_steps": Interval(int, 0),
        "batch_size": Interval(int, 1),
        "lr": Interval(float, 0, None, closed="neither"),
        "sample_stride": Interval(int, 1),
        "voter_false_alarm_rate": Interval(float, 0, 1, closed="neither"),
        "min_votes": Interval(int, 1, 6),  # there are 6 voters
        "flow_resolution": [Interval(float, 0, None, closed="neither"), None],
        "motion_score": Options("speed", "error"),
        "location_norm": Options("floored", "none"),
    }

    @classmethod
    def demo_params(cls) -> dict[str, Any]:
        # a tenth of the default training steps
        return {"sdae_steps": 150, "density_steps": 80, "scene_steps": 80, "progress": False}

    @classmethod
    def presets(cls) -> dict[str, vadx.params.Preset]:
        P = vadx.params.Preset
        return {**super().presets(),
                "cpu": P({"scale": 0.25, "sdae_steps": 1500, "density_steps": 600,
                          "scene_steps": 800, "flow_resolution": 0.5, "motion_score": "speed",
                          "location_norm": "floored"},
                         "the defaults: 1/4 scale, flow at 1/2, 1500/600/800 steps; Ped2 0.796, "
                         "fit 152 s on 1 thread (bench/results/bg_ensemble_ped2.json)"),
                "paper": P({"min_votes": 4, "flow_resolution": None, "location_norm": "none"},
                           "Jadhav & Inamdar give the structure (six voters, 4-of-6 vote) but no "
                           "sizes or schedule: the defaults without the two additions that are not "
                           "in the paper (flow at 1/2 scale, per-location normalisation)")}

    def __init__(self, *, scale: float = 0.25, tolerance: float = 12.0, mof_patch: int = 1,
                 mof_bins: int = 256, sdae_widths: tuple[int, ...] = (256, 192, 128, 96, 64, 32),
                 noise: float = 0.1, flow_scale: float = 1.0, scene_widths: tuple[int, ...] = (8, 16, 32),
                 adv_weight: float = 0.05, min_density_std: float = 0.02, sdae_steps: int = 1500,
                 density_steps: int = 600, scene_steps: int = 800, batch_size: int = 8,
                 lr: float = 1e-3, sample_stride: int = 2, voter_false_alarm_rate: float = 0.05,
                 min_votes: int = 4, flow_resolution: float | None = 0.5, motion_score: str = "speed",
                 location_norm: str = "floored", **kwargs):
        super().__init__(**kwargs)
        self.scale = scale
        self.tolerance = tolerance
        self.mof_patch = mof_patch
        self.mof_bins = mof_bins
        self.sdae_widths = sdae_widths
        self.noise = noise
        self.flow_scale = flow_scale
        self.scene_widths = scene_widths
        self.adv_weight = adv_weight
        self.min_density_std = min_density_std
        self.sdae_steps = sdae_steps
        self.density_steps = density_steps
        self.scene_steps = scene_steps
        self.batch_size = batch_size
        self.lr = lr
        self.sample_stride = sample_stride
        self.voter_false_alarm_rate = voter_false_alarm_rate
        self.min_votes = min_votes
        self.flow_resolution = flow_resolution
        self.motion_score = motion_score
        self.location_norm = location_norm

    # ------------------------------------------------------------------ modules
    def _build_modules(self) -> None:
        widths = tuple(self.sdae_widths)
        self.appearance_ae_ = SDAE(GRID * GRID, widths, sigmoid_output=True)
        self.motion_ae_ = SDAE(2 * GRID * GRID, widths, sigmoid_output=False)
        self.density_cnn_ = DensityCNN(widths[-1])
        self.generator_ = Generator(tuple(self.scene_widths))
        for m in (self.appearance_ae_, self.motion_ae_, self.density_cnn_, self.generator_):
            m.to(self.device).eval()

    # ------------------------------------------------------------------ pre-processing
    def _work_size(self, h: int, w: int) -> tuple[int, int]:
        return max(1, round(h * self.scale)), max(1, round(w * self.scale))

    def _flow_factor(self) -> float:
        return self.scale if self.flow_resolution is None else self.flow_resolution

    def _grey(self, frames: Tensor, factor: float | None = None) -> Tensor:
        """uint8 ``[t, C, H, W]`` -> grey uint8 ``[t, 1, h, w]`` at the working resolution (or at
        ``factor`` times the input size)."""
        x = frames.float()
        if x.shape[1] == 3:  # ITU-R BT.601 luma, as cv2's RGB2GRAY
            x = (x[:, 0:1] * 0.299 + x[:, 1:2] * 0.587 + x[:, 2:3] * 0.114)
        h, w = frames.shape[2:]
        size = self._work_size(h, w) if factor is None else (max(1, round(h * factor)), max(1, round(w * factor)))
        if size != tuple(x.shape[2:]):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        return x.round().clamp(0, 255).to(torch.uint8)

    @staticmethod
    def _pad(x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % GRID, (-w) % GRID
        return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x

    def _removed(self, grey: Tensor) -> Tensor:
        """Background-removed, padded uint8 ``[t, 1, Hp, Wp]``."""
        out = remove_background(grey, self.background_, self.tolerance, FILL)
        return self._pad(out.float()).to(torch.uint8)

    def _flow_grey(self, frames: Tensor, grey: Tensor) -> Tensor:
        """The grey frames optical flow is computed on (``flow_resolution``; ``grey`` if that is
        the working resolution)."""
        if self.flow_resolution is None or self.flow_resolution == self.scale:
            return grey
        return self._grey(frames, self.flow_resolution)

    def _flow(self, fgrey: Tensor, previous: Tensor | None, size: tuple[int, int]) -> Tensor:
        """Scaled, padded flow ``[t, 2, Hp, Wp]`` at the working resolution ``size`` (in its
        pixels) from each frame's predecessor; computed on ``fgrey`` and area-averaged down."""
        flow = farneback(fgrey, previous)
        if tuple(flow.shape[-2:]) != tuple(size):
            ratio = torch.tensor([size[1] / flow.shape[-1], size[0] / flow.shape[-2]], device=flow.device)
            flow = F.interpolate(flow, size=size, mode="area") * ratio.view(1, 2, 1, 1)
        return self._pad(flow / self.flow_scale)

    # ------------------------------------------------------------------ per-frame component scores
    def _maps(self, state: dict[str, Any], frames: Tensor) -> Tensor:
        """Per-window component evidence ``[t, 4, Hp/8, Wp/8]`` (appearance error, motion speed or
        error, density z-score, reconstruction error) of a chunk, carrying the last frames in
        ``state``. Frames go through the networks one at a time so the numbers cannot depend on
        how a stream is cut into chunks."""
        grey = self._grey(frames)
        fgrey = self._flow_grey(frames, grey)
        flow = self._flow(fgrey, state.get("fgrey"), tuple(grey.shape[-2:]))
        x = self._removed(grey).float() / 255.0
        past = state.get("x", torch.cat([x[:1], x[:1]]))  # frames t-2, t-1 (first frame stands in)
        ext = torch.cat([past, x])
        state["fgrey"], state["x"] = fgrey[-1:], ext[-2:]
        out = torch.empty(x.shape[0], 4, x.shape[-2] // GRID, x.shape[-1] // GRID, dtype=torch.float32,
                          device=x.device)
        for i in range(x.shape[0]):
            xi = x[i:i + 1]
            p = patchify(xi, GRID)
            rec, code = self.appearance_ae_(p)
            app = ((rec - p) ** 2).mean(dim=1)
            f = patchify(flow[i:i + 1], GRID)
            frec, _ = self.motion_ae_(f)
            if self.motion_score == "speed":  # mean speed of the motion representation per window
                mot = F.avg_pool2d(F.pixel_shuffle(frec, GRID).norm(dim=1), GRID)
            else:
                mot = ((frec - f) ** 2).mean(dim=1)
            dens = (self.density_cnn_(xi, code) - self.density_mean_) / self.density_std_
            before, middle, after = ext[i:i + 1], ext[i + 1:i + 2], ext[i + 2:i + 3]
            scene = F.avg_pool2d((self.generator_(before, after) - middle) ** 2, GRID)
            out[i] = torch.cat([app, mot, dens[0], scene[0]])
        return out

    def _normalised_components(self) -> list[int]:
        """Components whose maps are normalised per window location (``location_norm``)."""
        if self.location_norm == "none":
            return []
        return [0, 3] + ([1] if self.motion_score == "error" else [])

    def _fit_location_stats(self, maps: Tensor) -> None:
        """Per window location: mean and floored std of the normal training maps ``[N, 4, h, w]``
        (identity for components not normalised)."""
        mean = torch.zeros(maps.shape[1:])
        scale = torch.ones(maps.shape[1:])
        for c in self._normalised_components():
            m = maps[:, c].double()
            sd = m.std(0, unbiased=False)
            mean[c] = m.mean(0).float()
            scale[c] = (sd + sd.mean()).clamp_min(voters.MIN_STD).float()
        self.loc_mean_, self.loc_scale_ = mean.to(maps.device), scale.to(maps.device)

    def _reduce(self, maps: Tensor) -> Tensor:
        """``[t, 4, h, w]`` maps -> raw component scores ``[t, 4]``: max over window locations of
        the (location-normalised) evidence."""
        return ((maps - self.loc_mean_) / self.loc_scale_).flatten(2).amax(2)

    def _raw(self, state: dict[str, Any], frames: Tensor) -> Tensor:
        """Raw component scores ``[t, 4]`` (appearance, motion, density, reconstruction) of a chunk."""
        return self._reduce(self._maps(state, frames))

    # ------------------------------------------------------------------ fit
    def _fit(self, videos, labels):
        gen = self.generator()
        with self.seeded():
            self._build_modules()
            discriminator = Discriminator(tuple(self.scene_widths)).to(self.device)
        # Pass 1: the background, in bounded memory.
        mof = MOFBackground(patch_size=self.mof_patch, bins=self.mof_bins)
        for video in videos:
            for chunk in video:
                mof.partial_fit(self._grey(chunk))
        if mof.n_frames == 0:
            raise ValueError("videos held no frames: bg-ensemble needs normal training frames")
        self.background_ = mof.background
        # Pass 2: the training set at the working resolution.
        data = training.TrainingSet()
        for video in videos:
            frames, dens, flows, prev, t0 = [], [], [], None, 0
            for chunk in video:
                grey = self._grey(chunk)
                removed = self._removed(grey)
                fg = self._pad(mof.foreground(grey, self.tolerance).unsqueeze(1).float())
                frames.append(removed)
                dens.append(F.avg_pool2d(fg, GRID).half())
                keep = [i for i in range(grey.shape[0]) if (t0 + i) % self.sample_stride == 0]
                fgrey = self._flow_grey(chunk, grey)
                if keep:
                    flows.append(self._flow(fgrey, prev, tuple(grey.shape[-2:]))[keep].half())
                prev, t0 = fgrey[-1:], t0 + grey.shape[0]
            if frames:
                data.frames.append(torch.cat(frames))
                data.density.append(torch.cat(dens))
                data.flows.append(torch.cat(flows) if flows else torch.empty(0))
        lengths = [int(f.shape[0]) for f in data.frames]
        dev, b, p = self.device, self.batch_size, self.progress
        frames_any = training.sampler(lengths, 0, gen)
        flows_any = training.sampler([int(f.shape[0]) for f in data.flows], 0, gen)
        with self.seeded(1):
            training.train_sdae(self.appearance_ae_, training.frame_batches(data, frames_any, b, dev),
                                self.sdae_steps, self.lr, self.noise, gen, "bg-ensemble appearance SDAE", p)
            training.train_sdae(self.motion_ae_, training.flow_batches(data, flows_any, b, dev),
                                self.sdae_steps, self.lr, self.noise, gen, "bg-ensemble motion SDAE", p)
            training.train_density(self.density_cnn_, self.appearance_ae_, data, frames_any,
                                   self.density_steps, b, self.lr, "bg-ensemble density CNN", p, dev)
            if max(lengths) >= 3:
                training.train_scene(self.generator_, discriminator, data, training.sampler(lengths, 1, gen),
                                     self.scene_steps, b, self.lr, self.adv_weight,
                                     "bg-ensemble scene generator", p, dev)
        # Normal density statistics per window.
        with torch.inference_mode():
            s = s2 = None
            n = 0
            for frames in data.frames:
                for a in range(0, frames.shape[0], 64):
                    x = frames[a:a + 64].to(dev).float() / 255.0
                    d = training.density_map(self.density_cnn_, self.appearance_ae_, x).double()
                    s = d.sum(0) if s is None else s + d.sum(0)
                    s2 = (d * d).sum(0) if s2 is None else s2 + (d * d).sum(0)
                    n += d.shape[0]
            mean = s / n
            self.density_mean_ = mean.float()
            self.density_std_ = (s2 / n - mean * mean).clamp_min(0).sqrt().clamp_min(self.min_density_std).float()
        del data
        # Pass 3: the training videos through the scoring path, for the voters' statistics.
        maps = []
        with torch.inference_mode():
            for video in videos:
                state: dict[str, Any] = {}
                maps += [self._maps(state, chunk) for chunk in video]
            maps = torch.cat(maps)
            self._fit_location_stats(maps)
            raw = self._reduce(maps)
        del maps
        stats = voters.fit(raw, self.voter_false_alarm_rate)
        self.comp_mean_, self.comp_std_ = stats["comp_mean"], stats["comp_std"]
        self.combo_std_, self.voter_threshold_ = stats["combo_std"], stats["voter_threshold"]
        return self._ensemble(raw)[0]

    # ------------------------------------------------------------------ scoring
    def _ensemble(self, raw: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        scores, votes = voters.vote(raw, self.comp_mean_, self.comp_std_, self.combo_std_,
                                    self.voter_threshold_)
        frame, count, anomalous = voters.decide(scores, votes, self.min_votes)
        return frame, scores, count, anomalous

    def _update(self, state, frames):
        raw = self._raw(state, frames)
        frame, scores, count, anomalous = self._ensemble(raw)
        extras = {f"voter:{v}": scores[:, i] for i, v in enumerate(voters.VOTERS)}
        extras.update({f"raw:{c}": raw[:, i] for i, c in enumerate(voters.COMPONENTS)})
        extras["votes"] = count
        extras["anomalous"] = anomalous
        return vadx.Scores(frame=frame, extras=extras)

    def predict(self, video: Any) -> Tensor:
        """Boolean ``[T]``: the paper's decision, at least ``min_votes`` of the 6 voters say anomalous
        (not ``score > threshold_`` as for other detectors)."""
        return self.score(video).extras["anomalous"]

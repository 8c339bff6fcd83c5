"""The `two-stream` detector: Petrocchi, Giorgi, Cimino — two-stream CNN + bag-of-objects + SAS."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import torch
from torch import Tensor, nn

import vadx
import vadx.precision
from vadx.features import BACKBONES, KNOWN_FILES, demo_weights, load_backbone
from vadx.objects import ObjectDetector
from vadx.ops.accumulator_score import accumulator_score
from vadx.params import Bool, Instance, Interval, Options, Path
from vadx.plugins import create_object_detector
from vadx.precision import PRECISIONS

from .classifier import make_classifier
from .gradcam import grad_cam
from .objects_bag import BagClock, bag_of_objects
from .streams import POOLS, TwoStreamNet, flow_images, resize_frames
from .training import EXCLUDED, adaptive_sample, run_phase, weighted_bce

_POSITIVE = Interval(float, 0, None, closed="neither")


class TwoStream(vadx.Detector):
    """Supervised frame classifier on RGB + optical-flow streams and a bag-of-objects, scored by SAS.

    Method (paper §3): each frame is resized to ``input_size`` (224) square; the RGB stream sees
    the frame, the motion stream the Farneback optical flow from the frame's predecessor encoded
    as an HSV->RGB image (:func:`vadx.flow.flow_to_rgb`); each stream is an ImageNet backbone
    (paper: ResNet-50) whose last feature map is globally pooled (``pool``: the paper's
    average, or max). The optional
    bag-of-objects (per-class counts of objects with confidence >= ``min_object_confidence``
    from an object detector, paper: YOLOv4 on COCO) is concatenated, and the classifier
    FC 4096 - ReLU - Dropout 0.5 - FC 4096 - ReLU - Dropout 0.5 - FC 1 gives the anomaly
    confidence sigma_t. Scores.frame is the Sigmoidal Anomaly Score of sigma
    (:func:`vadx.ops.accumulator_score`, tau 0.5, nu 2 per frame at 30 frames/s, bounds +-7,
    x0 = LB); the raw sigma is
    ``Scores.extras["confidence"]``. A stream carries the SAS accumulator and the previous frame.
    ``localize=True`` adds Grad-CAM maps (§5.5): ``Scores.maps`` is the sum of the two streams'
    Grad-CAMs on their last conv layer (``extras["cam_rgb"]``, ``extras["cam_flow"]``).

    ``fit(videos, labels)``: frame labels per video, 0 normal, 1 (hard) anomaly, -1 excluded
    (soft anomaly, paper §3.4: neither normal nor anomalous in training). Training (§3.3, §4.2):
    adaptive sampling per segment, batch-wise hard mining (alpha K candidates, the K highest
    losses), class weights 1 / 2, Adam; phase 1 trains the classifier at 1e-5, phase 2 all
    weights at 1e-6, each until the validation loss has not improved for ``patience`` epochs
    (best weights restored).

    Choices the paper leaves open, and deviations (with the reason):

    - Sampling rates: the paper's §4.2 says "3 FPS for segments containing anomalies and 10 FPS
      for normal ones", but its §3.3 ("sample with an even lower framerate normal videos"), its
      §5 ("only 1/3 of the anomalous frames and less than 1/10 of the normal frames" of 30 fps
      UCF-Crime) and its C3D variant (denser strides for anomalous segments) all say the
      opposite, which is also what data balancing needs. Defaults: ``anomaly_fps=10``,
      ``normal_fps=3``; pass the §4.2 reading explicitly if wanted. Each video's own frame rate
      is used (``fps`` of vadx.io readers and vadx.data videos; UCSD's loader says 10);
      ``source_fps`` (default 30, UCF-Crime's) stands in where a video does not say.
    - SAS in seconds, not frames: the accumulator's step nu is ``nu_per_second / fps``, the
      same rule for its rise and its decay, so a detector reacts within the same time at 10
      and at 30 frames/s. ``nu_per_second=60`` is the paper's nu = 2 per frame at UCF-Crime's
      30 frames/s (confident frames carry it from -7 to +7 in 14 / 60 s = 0.23 s); the
      video's fps comes from the stream (``det.stream(fps=...)``, ``det.score(video)`` reads
      the video's own) or ``source_fps``. ``nu`` fixes a step per frame instead (the paper's
      literal ``nu=2``, whatever the frame rate).
    - Optical flow is always between a frame and its immediate predecessor in the source video,
      in training and in scoring: a flow across the sampling gap would make motion magnitude
      depend on the class's sampling rate (a label leak) and differ from test time. Computed at
      ``input_size`` on the resized grey frames; the flow image shows ``flow_max_magnitude``
      pixels (default 8) at full brightness (fixed, so that slow frames look slow). A video's
      first frame has zero flow.
    - Preprocessing: torchvision weights expect RGB in [0, 1] normalised by ImageNet mean/std
      (the paper's Keras ResNet-50 wanted BGR mean-centred): we follow the weights we load.
      Grey frames (UCSD) are replicated to three channels.
    - Backbones: ``backbone`` (default ``"resnet50"``, the paper's) by weights path, SHA-256
      checked (:func:`vadx.features.load_backbone`); both streams start from the same weights.
      ``"mobilenet_v2"`` runs with the ImageNet weights available here.
    - Batch size K (not given): ``batch_size=32``. Hard-mining candidate losses are computed in
      inference mode (no dropout) and weighted by class, as is the training loss (mean over K).
    - Phase 2 keeps BatchNorm statistics frozen (backbones in eval mode): batches of K frames
      are too small and too unbalanced to re-estimate them. ``finetune=False`` skips phase 2
      (it needs the sampled input images kept in memory, ``2 * 3 * 224^2`` bytes per sample).
    - Phase 2's early stopping counts the weights phase 1 left as its epoch 0: if no fine-tuning
      epoch lowers the validation loss, phase 1's model is kept (``history_["phase2"]
      ["best_epoch"] == 0``). On Ped2 (fold 0 of bench/two_stream_ablation.py ``finetune``)
      every phase-2 epoch at 1e-6 raised it, from 0.268 to 0.308-0.394.
    - Validation split (paper: half of its test videos): ``validation_videos`` (indices into
      ``fit``'s videos) or, by default, a seeded ``validation_fraction`` (0.2, at least one) of
      the videos; ``validation_videos=[]`` trains without early stopping for ``max_epochs``.
    - Bag-of-objects: raw counts (not normalised), as the paper describes it. The object
      detector is pluggable: ``object_detector={"name": "darknet", "cfg": ..., "weights": ...,
      "names": ...}`` (any detector registered through the hook
      ``vadx_register_object_detectors``); None gives the paper's "no-bag" variant.
    - Object detection rate: the paper detects objects in every frame. Here at most
      ``object_fps`` (10) frames per second are detected and the frames between reuse the last
      bag (:class:`~vadx_two_stream.objects_bag.BagClock`), in training and scoring alike:
      the same as the paper at 10 frames/s or less (UCSD), every 3rd frame at 30. Objects rarely
      appear or vanish within 0.1 s, and detection is the costliest stage of scoring
      (bench/test_two_stream.py). ``object_fps=None`` detects every frame; the rate fitted is
      kept with the model (``object_fps_``).
    - SAS decay: the op's default ``"symmetric"`` (authors' code); ``sas_decay="paper"`` for the
      paper's formula.
    - Pooling: the paper global-average pools each stream's last feature map (``pool="avg"``,
      the default). ``pool="max"`` keeps the strongest response per channel instead, so a small
      object (a bicycle among walkers in a wide view) is not averaged away with the background:
      on Ped2's cross-validation the training-data criterion of bench/two_stream_ablation.py
      (every frame of each fold's validation video) prefers it, and the ``cpu`` preset uses it.
    - Precision: ``precision="auto"`` runs both backbones and the classifier under bf16 autocast
      where the processor computes bf16 natively (:mod:`vadx.precision`), in training and in
      scoring alike (the classifier learns the features it will see); the choice made at fit is
      kept as ``precision_`` and used wherever the model is loaded. ``"fp32"`` for float32.
    - ``threshold_`` is the paper's alarm rule, SAS > ``alarm_threshold`` (0.5), not a quantile
      of training scores: ``false_alarm_rate`` is unused.
    - ``decision_scores_`` holds the classifier confidences sigma (not SAS: the sampled frames
      are not consecutive) of the normal (label 0) frames sampled for training, training split
      only, from the trained model; they do not set ``threshold_``.

    Args:
        backbone: both streams' ImageNet backbone, ``"resnet50"`` (paper) or another of
            :data:`vadx.features.BACKBONES`.
        weights: its torchvision-format state dict (path), None to look in ``$VADX_WEIGHTS_DIR``,
            or ``"random"`` (tests only).
        weights_sha256: the weights file's expected SHA-256 (None: the known digests only).
        object_detector: the bag-of-objects detector as ``{"name": ..., **its parameters}``, or
            None for the paper's "no-bag" variant.
        min_object_confidence: objects below this confidence are not counted in the bag.
        object_fps: objects are detected in at most this many frames per second, the bag held
            in between (None: every frame, the paper).
        input_size: the square side frames are resized to for both streams (paper: 224).
        flow_max_magnitude: flow (pixels per frame) shown at full brightness in the flow image.
        pool: global pooling of each stream's last feature map, ``"avg"`` (paper) or ``"max"``.
        hidden: units of each of the classifier's two hidden layers (paper: 4096).
        dropout: the classifier's dropout rate (paper: 0.5).
        source_fps: frame rate assumed where a video does not give its own.
        anomaly_fps: training sampling rate of anomalous segments (frames per second).
        normal_fps: training sampling rate of normal segments (frames per second).
        alpha: hard mining draws ``alpha * batch_size`` candidates per batch (paper: 3).
        batch_size: K, the training batch size after hard mining.
        normal_weight: class weight of normal frames in the loss (paper: 1).
        anomaly_weight: class weight of anomalous frames in the loss (paper: 2).
        head_lr: Adam learning rate of phase 1, the classifier alone (paper: 1e-5).
        finetune_lr: Adam learning rate of phase 2, all weights (paper: 1e-6).
        patience: epochs without a better validation loss before a phase stops.
        max_epochs: phase 1's most epochs.
        finetune: run phase 2 (fine-tuning the backbones); False skips it.
        finetune_max_epochs: phase 2's most epochs.
        validation_videos: indices of ``fit``'s videos used for validation (None: a seeded
            ``validation_fraction``; ``[]``: no early stopping).
        validation_fraction: share of the videos held out for validation when none are named.
        tau: SAS's confidence threshold (paper: 0.5).
        nu: SAS's step per frame; None derives it from ``nu_per_second`` and the frame rate.
        nu_per_second: SAS's step per second (60: the paper's 2 per frame at 30 frames/s).
        lb: SAS's lower bound, also its start (paper: -7).
        ub: SAS's upper bound (paper: 7).
        sas_decay: ``"symmetric"`` (the authors' code) or ``"paper"`` (the paper's formula).
        alarm_threshold: a frame alarms when its SAS exceeds this (``threshold_``).
        localize: add Grad-CAM maps of both streams to the scores.
        feature_batch: frames per backbone forward pass.
        precision: ``"auto"`` (bf16 autocast where the CPU computes bf16 natively), ``"bf16"``
            or ``"fp32"``.

    ``seed`` and ``progress`` are the base class's (:class:`vadx.Detector`).
    """

    name = "two-stream"
    supervised = True
    parameters = {
        "backbone": Options(*BACKBONES),
        "weights": [Options("random"), Path(), None],
        "weights_sha256": [Instance(str, "a SHA-256 hex digest (str)", invalid=[3]), None],
        "object_detector": [Instance(dict, "a dict with a 'name' key and the object detector's "
                                           "parameters", lambda d: isinstance(d.get("name"), str),
                                     invalid=["darknet", {"cfg": "yolo.cfg"}]), None],
        "min_object_confidence": Interval(float, 0, 1),
        "object_fps": [_POSITIVE, None],
        "input_size": Interval(int, 1),
        "flow_max_magnitude": _POSITIVE,
        "pool": Options(*POOLS),
        "hidden": Interval(int, 1),
        "dropout": Interval(float, 0, 1, closed="left"),
        "source_fps": _POSITIVE,
        "anomaly_fps": _POSITIVE,
        "normal_fps": _POSITIVE,
        "alpha": Interval(int, 1),
        "batch_size": Interval(int, 1),
        "normal_weight": _POSITIVE,
        "anomaly_weight": _POSITIVE,
        "head_lr": _POSITIVE,
        "finetune_lr": _POSITIVE,
        "patience": Interval(int, 1),
        "max_epochs": Interval(int, 1),
        "finetune": Bool(),
        "finetune_max_epochs": Interval(int, 1),
        "validation_videos": [Instance(
            (list, tuple), "a list of video indices (ints >= 0)",
            lambda v: all(isinstance(i, Integral) and not isinstance(i, bool) and i >= 0 for i in v),
            canonical=lambda v: [int(i) for i in v], invalid=[1, [-1], ["a"]]), None],
        "validation_fraction": Interval(float, 0, 1, closed="neither"),
        "tau": Interval(float, 0, 1, closed="left"),
        "nu": [_POSITIVE, None],
        "nu_per_second": _POSITIVE,
        "lb": Interval(float),
        "ub": Interval(float),
        "sas_decay": Options("symmetric", "paper"),
        "alarm_threshold": Interval(float, 0, 1, closed="left"),
        "localize": Bool(),
        "feature_batch": Interval(int, 1),
        "precision": Options(*PRECISIONS),
    }
    map_params = {"localize": True}  # Grad-CAM maps, off by default

    @classmethod
    def demo_params(cls) -> dict[str, Any]:
        # MobileNetV2 streams at 112 px, classifier only (no fine-tuning), a few epochs; the
        # synthetic clips carry no frame rate: 10 frames/s as UCSD's
        return {"backbone": "mobilenet_v2", "weights": demo_weights("mobilenet_v2"),
                "input_size": 112, "hidden": 512, "max_epochs": 5, "finetune": False,
                "source_fps": 10.0, "progress": False}

    @classmethod
    def presets(cls) -> dict[str, vadx.params.Preset]:
        P = vadx.params.Preset
        return {**super().presets(),
                "cpu": P({"backbone": "mobilenet_v2", "source_fps": 10.0, "max_epochs": 30,
                          "head_lr": 1e-4, "finetune": False, "precision": "auto", "pool": "max",
                          "normal_fps": 10.0},
                         "the Ped2 cross-validation recipe (two_stream_ped2.json): MobileNetV2 "
                         "streams (weights from $VADX_WEIGHTS_DIR) max-pooled, normal segments "
                         "sampled at 10 frames/s (both chosen by a training-data criterion, "
                         "two_stream_ped2_ablation.json), classifier only (no fine-tuning), <= 30 "
                         "epochs at 1e-4, bf16; its bag of objects (Yolo-Fastest-1.1-XL) is "
                         "files: add --set object_detector={...}"),
                "paper": P({"backbone": "resnet50", "input_size": 224, "hidden": 4096,
                            "pool": "avg", "dropout": 0.5, "normal_weight": 1.0, "anomaly_weight": 2.0,
                            "head_lr": 1e-5, "finetune_lr": 1e-6, "patience": 5, "finetune": True,
                            "object_fps": None,
                            "tau": 0.5, "nu_per_second": 60.0, "lb": -7.0, "ub": 7.0,
                            "sas_decay": "paper", "alarm_threshold": 0.5},
                           "Petrocchi et al.: ResNet-50 streams at 224 px, FC 4096 x 2 with dropout "
                           "0.5, class weights 1/2, 1e-5 then fine-tuning at 1e-6, patience 5, SAS "
                           "tau 0.5, nu 2 per frame at 30 fps, bounds +-7, the paper's decay, alarm "
                           "> 0.5, objects detected in every frame; needs ResNet-50 weights (and an "
                           "object detector for the bag)")}

    def __init__(
        self,
        *,
        backbone: str = "resnet50",
        weights: str | None = None,
        weights_sha256: str | None = None,
        object_detector: dict | None = None,
        min_object_confidence: float = 0.5,
        object_fps: float | None = 10.0,
        input_size: int = 224,
        flow_max_magnitude: float = 8.0,
        pool: str = "avg",
        hidden: int = 4096,
        dropout: float = 0.5,
        source_fps: float = 30.0,
        anomaly_fps: float = 10.0,
        normal_fps: float = 3.0,
        alpha: int = 3,
        batch_size: int = 32,
        normal_weight: float = 1.0,
        anomaly_weight: float = 2.0,
        head_lr: float = 1e-5,
        finetune_lr: float = 1e-6,
        patience: int = 5,
        max_epochs: int = 100,
        finetune: bool = True,
        finetune_max_epochs: int = 100,
        validation_videos: list[int] | None = None,
        validation_fraction: float = 0.2,
        tau: float = 0.5,
        nu: float | None = None,
        nu_per_second: float = 60.0,
        lb: float = -7.0,
        ub: float = 7.0,
        sas_decay: str = "symmetric",
        alarm_threshold: float = 0.5,
        localize: bool = False,
        feature_batch: int = 16,
        precision: str = "auto",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.backbone, self.weights, self.weights_sha256 = backbone, weights, weights_sha256
        self.object_detector, self.min_object_confidence = object_detector, min_object_confidence
        self.object_fps = object_fps
        self.input_size, self.flow_max_magnitude = input_size, flow_max_magnitude
        self.pool, self.hidden, self.dropout = pool, hidden, dropout
        self.source_fps, self.anomaly_fps, self.normal_fps = source_fps, anomaly_fps, normal_fps
        self.alpha, self.batch_size = alpha, batch_size
        self.normal_weight, self.anomaly_weight = normal_weight, anomaly_weight
        self.head_lr, self.finetune_lr, self.patience, self.max_epochs = head_lr, finetune_lr, patience, max_epochs
        self.finetune, self.finetune_max_epochs = finetune, finetune_max_epochs
        self.validation_videos, self.validation_fraction = validation_videos, validation_fraction
        self.tau, self.nu, self.lb, self.ub, self.sas_decay = tau, nu, lb, ub, sas_decay
        self.nu_per_second = nu_per_second
        self.alarm_threshold, self.localize = alarm_threshold, localize
        self.feature_batch = feature_batch
        self.precision = precision
        self._objects: ObjectDetector | None = None

    def _check_params(self) -> None:
        if not self.lb < self.ub:
            raise self._param_error("ub", f"greater than lb = {self.lb!r}")

    def _threshold(self, train_scores: Tensor) -> float:
        """The paper's alarm rule, SAS > ``alarm_threshold``: not a quantile of training scores."""
        return float(self.alarm_threshold)

    # ------------------------------------------------------------------ parts
    def _object_detector(self) -> ObjectDetector | None:
        if self.object_detector is None:
            return None
        if self._objects is None:
            params = {k: v for k, v in self.object_detector.items() if k != "name"}
            self._objects = create_object_detector(self.object_detector["name"], **params)
            if hasattr(self._objects, "to"):
                self._objects.to(self.device)
        return self._objects

    def _new_net(self, rgb: nn.Module, flow: nn.Module, in_features: int) -> TwoStreamNet:
        # models saved before ``precision`` existed computed in float32
        net = TwoStreamNet(rgb, flow, make_classifier(in_features, self.hidden, self.dropout),
                           getattr(self, "precision_", "fp32"), self.pool)
        return net.channels_last()

    def _setup(self) -> None:
        """Backbones from ``weights`` and the classifier (seeded); run before feature extraction."""
        if getattr(self, "net_", None) is not None:
            return
        self.precision_ = vadx.precision.resolve(self.precision, self.device)
        self.object_fps_ = self.object_fps  # kept with the model, as precision_
        rgb = load_backbone(self.backbone, self.weights, sha256=self.weights_sha256)
        info = rgb.weights_info
        self.weights_info_ = info.to_json()
        known = KNOWN_FILES.get(info.sha256) if info.sha256 else None
        self.backbone_kwargs_ = dict(known.build_kwargs) if known else {}
        flow = load_backbone(self.backbone, "random", **self.backbone_kwargs_)
        flow.load_state_dict(rgb.state_dict())
        objects = self._object_detector()
        self.n_object_classes_ = len(objects.classes) if objects is not None else 0
        self.in_features_ = 2 * rgb.out_channels + self.n_object_classes_
        with self.seeded():
            self.net_ = self._new_net(rgb, flow, self.in_features_).to(self.device).eval()

    def _build_modules(self) -> None:
        rgb = load_backbone(self.backbone, "random", **self.backbone_kwargs_)
        flow = load_backbone(self.backbone, "random", **self.backbone_kwargs_)
        self.net_ = self._new_net(rgb, flow, self.in_features_).eval()

    def to(self, device):
        super().to(device)
        if self._objects is not None and hasattr(self._objects, "to"):
            self._objects.to(self.device)
        return self

    # ------------------------------------------------------------------ features
    def _inputs(self, state: dict, frames: Tensor) -> tuple[Tensor, Tensor]:
        """Resized frames and flow images of one chunk; carries the previous frame in ``state``."""
        small = resize_frames(frames, self.input_size)
        flow = flow_images(small, state.get("prev"), self.flow_max_magnitude)
        state["prev"] = small[-1:]
        return small, flow

    def _bags(self, state: dict, frames: Tensor, selected: Tensor | None = None) -> Tensor | None:
        """Bags of ``frames[selected]`` (default all) of the next chunk of the video in ``state``."""
        objects = self._object_detector()
        if objects is None:
            return None
        if "bags" not in state:
            fps = state.get("fps") or self.source_fps
            # files saved before object_fps existed detected objects in every frame
            state["bags"] = BagClock(fps, getattr(self, "object_fps_", None))
        bags = state["bags"].bags(frames, lambda f: bag_of_objects(
            objects.detect(f), self.n_object_classes_, self.min_object_confidence), selected)
        return bags.to(self.device)

    @torch.no_grad()
    def _embed(self, small: Tensor, flow: Tensor) -> tuple[Tensor, Tensor]:
        parts = [self.net_.features(small[i:i + self.feature_batch], flow[i:i + self.feature_batch])
                 for i in range(0, small.shape[0], self.feature_batch)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def extract_features(self, video: Any, indices: Tensor | None = None, *,
                         keep_images: bool = False) -> dict[str, Tensor | None]:
        """Backbone features (and bags) of a video's frames ``indices`` (default: all).

        Returns ``{"rgb": [n, C], "flow": [n, C], "bag": [n, K] or None, "n_frames": [1]}``, plus
        ``"rgb_img"``/``"flow_img"`` (uint8 inputs) with ``keep_images``. Backbones are frozen in
        phase 1, so features extracted once can train the classifier (:meth:`fit_features`).
        """
        self._setup()
        chunks = video if isinstance(video, vadx.detector.VideoChunks) else \
            vadx.detector.VideoChunks(video, self.chunk_size, self.device)
        wanted = None if indices is None else torch.as_tensor(indices).long().cpu()
        out: dict[str, list[Tensor]] = {"rgb": [], "flow": [], "bag": [], "rgb_img": [], "flow_img": []}
        state: dict = {}
        self._start_video(state, chunks.fps)
        start = 0
        total = None if wanted is None else int(wanted.numel())
        with self.progress_bar(total, "two-stream features", "frame") as bar:
            for frames in chunks:
                t = frames.shape[0]
                if wanted is None:
                    sel = torch.arange(t)
                    small, flow = self._inputs(state, frames)
                else:
                    sel = wanted[(wanted >= start) & (wanted < start + t)] - start
                    # flow only where a sampled frame needs it (from its own predecessor)
                    small = resize_frames(frames, self.input_size)
                    before = state.get("prev")  # None at a video's first frame: zero flow
                    state["prev"] = small[-1:]
                    flow = [flow_images(small[j:j + 1], small[j - 1:j] if j else before,
                                        self.flow_max_magnitude) for j in sel.tolist()]
                    flow = torch.cat(flow) if flow else None
                    small = small[sel.to(frames.device)]
                start += t
                bag = self._bags(state, frames, sel)  # every chunk: the clock counts frames
                if sel.numel() == 0:
                    continue
                sel_d = sel.to(frames.device)
                if wanted is None:
                    small, flow = small[sel_d], flow[sel_d]
                rf, ff = self._embed(small, flow)
                out["rgb"].append(rf)
                out["flow"].append(ff)
                if bag is not None:
                    out["bag"].append(bag)
                if keep_images:
                    out["rgb_img"].append(small.cpu())
                    out["flow_img"].append(flow.cpu())
                bar.update(int(sel.numel()))
        if wanted is not None and wanted.numel() and int(wanted.max()) >= start:
            raise ValueError(f"indices go up to {int(wanted.max())} but the video has {start} frames")
        width = self.net_.rgb.out_channels
        cat = lambda k, shape: torch.cat(out[k]) if out[k] else torch.zeros(shape)  # noqa: E731
        result: dict[str, Tensor | None] = {
            "rgb": cat("rgb", (0, width)), "flow": cat("flow", (0, width)),
            "bag": cat("bag", (0, self.n_object_classes_)) if self.n_object_classes_ else None,
            "n_frames": torch.tensor([start]),
        }
        if keep_images:
            c = 1 if not out["rgb_img"] else out["rgb_img"][0].shape[1]
            result["rgb_img"] = cat("rgb_img", (0, c, self.input_size, self.input_size))
            result["flow_img"] = cat("flow_img", (0, 3, self.input_size, self.input_size))
        return result

    # ------------------------------------------------------------------ training
    def sample(self, labels: Any, fps: float | None = None) -> Tensor:
        """The frame indices training uses from a video with these frame labels, recorded at
        ``fps`` frames/s (None: ``source_fps``)."""
        return adaptive_sample(_check_labels(labels, "labels"),
                               source_fps=self.source_fps if fps is None else fps,
                               anomaly_fps=self.anomaly_fps, normal_fps=self.normal_fps)

    def step_per_frame(self, fps: float | None) -> float:
        """The SAS step nu for a video at ``fps`` frames/s (None: ``source_fps``)."""
        if self.nu is not None:
            return float(self.nu)
        return self.nu_per_second / (self.source_fps if fps is None else fps)

    def _split(self, n: int) -> list[int]:
        if self.validation_videos is not None:
            bad = [i for i in self.validation_videos if not 0 <= i < n]
            if bad or len(set(self.validation_videos)) >= n:
                raise ValueError(f"validation_videos must be distinct indices of the {n} fit videos, "
                                 f"leaving at least one to train on; got {self.validation_videos}")
            return sorted(set(self.validation_videos))
        if n < 2:
            raise ValueError(f"two-stream needs at least 2 videos to hold one out for early stopping "
                             f"(validation_fraction), got {n}; or pass validation_videos=[]")
        k = min(max(1, round(self.validation_fraction * n)), n - 1)
        return sorted(torch.randperm(n, generator=self.generator())[:k].tolist())

    def _fit(self, videos, labels):
        val_ids = set(self._split(len(videos)))
        self._setup()
        train, val = [], []
        for i, (video, lab) in enumerate(zip(videos, labels)):
            lab = _check_labels(lab, f"labels[{i}]")
            idx = self.sample(lab, video.fps)
            feats = self.extract_features(video, idx, keep_images=self.finetune)
            if int(feats["n_frames"]) != lab.numel():
                raise ValueError(f"labels[{i}] has {lab.numel()} frame labels; videos[{i}] has "
                                 f"{int(feats['n_frames'])} frames")
            feats["target"] = lab[idx].float()
            (val if i in val_ids else train).append(feats)
        return self._train(train, val, with_images=self.finetune)

    def fit_features(self, train: list[dict], val: list[dict]) -> TwoStream:
        """Phase 1 only, on features from :meth:`extract_features` with ``"target"`` [n] added.

        For experiments that reuse frozen-backbone features across runs (cross-validation); the
        result scores videos like a fitted detector (``input_shape_`` None: the features do not
        say which frames they came from). Phase 2 needs images: use :meth:`fit`.
        """
        self._setup()
        return self._complete_fit(self._train(train, val, with_images=False))

    def _train(self, train: list[dict], val: list[dict], *, with_images: bool) -> Tensor:
        """Phase 1 (and 2 ``with_images``); returns the confidences sigma of the normal training
        samples under the trained model (``decision_scores_``)."""
        if not train:
            raise ValueError("no training videos left after the validation split")
        cat = lambda parts, k: torch.cat([p[k] for p in parts]).to(self.device)  # noqa: E731
        y = cat(train, "target")
        if y.numel() == 0:
            raise ValueError("the training videos have no frames left to train on (all excluded?)")
        if not ((y == 0).any() and (y == 1).any()):
            raise ValueError(f"the training frames must include both normal (0) and anomalous (1) "
                             f"labels; got only {int(y[0])}")
        bags = self.n_object_classes_ > 0
        rf, ff = cat(train, "rgb"), cat(train, "flow")
        bag = cat(train, "bag") if bags else None
        has_val = bool(val) and sum(p["target"].numel() for p in val) > 0
        if has_val:
            vy, vrf, vff = cat(val, "target"), cat(val, "rgb"), cat(val, "flow")
            vbag = cat(val, "bag") if bags else None
        net = self.net_
        gen = self.generator()
        common = dict(model=net, targets=y, batch_size=self.batch_size, alpha=self.alpha,
                      normal_weight=self.normal_weight, anomaly_weight=self.anomaly_weight,
                      patience=self.patience, generator=gen, progress=self.progress)

        def head_mode(flag: bool) -> None:
            net.eval()
            net.head.train(flag)

        def val_loss_head() -> float:
            with torch.no_grad():
                return float(weighted_bce(net.logit(vrf, vff, vbag), vy, self.normal_weight,
                                          self.anomaly_weight).mean())

        history: dict[str, Any] = {}
        with self.seeded():  # dropout masks
            history["phase1"] = run_phase(
                params=list(net.head.parameters()),
                logits_of=lambda i: net.logit(rf[i], ff[i], bag[i] if bags else None),
                val_loss=val_loss_head if has_val else None, lr=self.head_lr,
                max_epochs=self.max_epochs, train_mode=head_mode, desc="two-stream phase 1 (FC)",
                **common)
            if with_images:
                ri, fi = torch.cat([p["rgb_img"] for p in train]), torch.cat([p["flow_img"] for p in train])
                if has_val:
                    vri = torch.cat([p["rgb_img"] for p in val])
                    vfi = torch.cat([p["flow_img"] for p in val])

                def logits_all(i: Tensor) -> Tensor:
                    i = i.cpu()
                    return net(ri[i].to(self.device), fi[i].to(self.device), bag[i] if bags else None)

                def val_loss_all() -> float:
                    losses = []
                    with torch.no_grad():
                        for s in range(0, vy.numel(), self.feature_batch):
                            sl = slice(s, s + self.feature_batch)
                            logit = net(vri[sl].to(self.device), vfi[sl].to(self.device),
                                        vbag[sl] if bags else None)
                            losses.append(weighted_bce(logit, vy[sl], self.normal_weight,
                                                       self.anomaly_weight))
                    return float(torch.cat(losses).mean())

                history["phase2"] = run_phase(
                    params=list(net.parameters()), logits_of=logits_all,
                    val_loss=val_loss_all if has_val else None, lr=self.finetune_lr,
                    max_epochs=self.finetune_max_epochs, train_mode=head_mode,
                    desc="two-stream phase 2 (all)", keep_start=True, **common)
        net.eval()
        history["n_train_samples"] = int(y.numel())
        history["n_val_samples"] = int(vy.numel()) if has_val else 0
        self.history_ = history
        # decision_scores_: sigma of the normal training samples, from what is in memory: the
        # cached features (frozen backbones), or the images when phase 2 changed the backbones
        normal = (y == 0).nonzero().squeeze(1)
        with torch.no_grad():
            if with_images:
                ni = normal.cpu()
                logit = torch.cat([
                    net(ri[ni[s:s + self.feature_batch]].to(self.device),
                        fi[ni[s:s + self.feature_batch]].to(self.device),
                        bag[normal[s:s + self.feature_batch]] if bags else None)
                    for s in range(0, ni.numel(), self.feature_batch)])
            else:
                logit = net.logit(rf[normal], ff[normal], bag[normal] if bags else None)
        return torch.sigmoid(logit.float())

    # ------------------------------------------------------------------ scoring
    def _start_video(self, state: dict, fps: float | None) -> None:
        state["nu"] = self.step_per_frame(fps)
        state["fps"] = fps

    def _update(self, state: dict, frames: Tensor) -> vadx.Scores:
        net = self.net_
        small, flow = self._inputs(state, frames)
        bag = self._bags(state, frames)
        extras: dict[str, Tensor] = {}
        maps = None
        if self.localize:
            logit, cams = self._logit_and_cams(small, flow, bag, tuple(frames.shape[2:]))
            extras["cam_rgb"], extras["cam_flow"] = cams
            maps = cams[0] + cams[1]
        else:
            logit = torch.cat([net.logit(*net.features(small[i:i + self.feature_batch],
                                                       flow[i:i + self.feature_batch]),
                                         bag[i:i + self.feature_batch] if bag is not None else None)
                               for i in range(0, small.shape[0], self.feature_batch)])
        sigma = torch.sigmoid(logit.float())
        x0 = state.get("x", self.lb)
        nu = state.get("nu", self.step_per_frame(None))
        sas, state["x"] = accumulator_score(sigma, self.tau, nu, self.lb, self.ub, x0, self.sas_decay)
        extras["confidence"] = sigma
        return vadx.Scores(frame=sas, maps=maps, extras=extras)

    def _logit_and_cams(self, small, flow, bag, hw):
        net = self.net_
        logits, cam_r, cam_f = [], [], []
        with torch.inference_mode(False), torch.enable_grad():
            for i in range(0, small.shape[0], self.feature_batch):
                sl = slice(i, i + self.feature_batch)
                with torch.no_grad():  # the maps as scoring computes them (folded backbones)
                    a, b = net.feature_maps(small[sl], flow[sl])
                a, b = a.requires_grad_(), b.requires_grad_()  # Grad-CAM needs d logit / d maps
                logit = net.logit(net.pool(a), net.pool(b), bag[sl].clone() if bag is not None else None)
                ga, gb = torch.autograd.grad(logit.sum(), [a, b])  # frames are independent (eval BN)
                logits.append(logit.detach())
                cam_r.append(grad_cam(a.detach(), ga, hw))
                cam_f.append(grad_cam(b.detach(), gb, hw))
        return torch.cat(logits), (torch.cat(cam_r), torch.cat(cam_f))


def _check_labels(labels: Any, what: str) -> Tensor:
    lab = torch.as_tensor(labels)
    if lab.dim() != 1 or lab.is_floating_point() and not torch.equal(lab, lab.round()):
        raise ValueError(f"{what} must be a 1-D tensor of integer frame labels, got shape "
                         f"{tuple(lab.shape)} dtype {lab.dtype}")
    lab = lab.long().cpu()
    bad = set(lab.unique().tolist()) - {0, 1, EXCLUDED}
    if bad:
        raise ValueError(f"{what} must hold 0 (normal), 1 (anomaly) or {EXCLUDED} (excluded soft "
                         f"anomaly), got values {sorted(bad)}")
    return lab

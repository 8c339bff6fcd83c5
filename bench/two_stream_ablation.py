"""two-stream on UCSD Ped2: which knob moves the 4-fold cross-validation? (issue 17's ablation)

Run (one variant per process; one torch thread each on the shared 2-core machine):
    python bench/two_stream_ablation.py extract
    python bench/two_stream_ablation.py cv --pool max --normal-fps 10

``extract`` stores, per video, both streams' last MobileNetV2 maps pooled two ways (global
average: the paper's; global max) and Yolo-Fastest-1.1-XL's raw detections down to confidence 0.05,
so that pooling and the bag's confidence can be varied without running the backbones again (all
28 videos, $VADX_BENCH_CACHE/ablation, default /tmp/vadx_two_stream_cache/ablation). ``cv`` runs
the protocol of bench/test_two_stream.py (the same folds, validation videos, lr 1e-4, <= 30
epochs, SAS at 60 per second) on them and merges one row into
bench/results/two_stream_ped2_ablation.json.

``finetune --fold K`` runs the detector's own ``fit`` (both phases: phase 2 fine-tunes both
backbones at 1e-6 from the sampled images, early-stopped on the validation video as the paper)
on one fold, and compares its out-of-fold frame AUC and validation loss with phase 1 alone (the
same fit's classifier before phase 2, on the features of the unchanged backbones). It needs the
bench's feature cache of the chosen pooling (bench/test_two_stream.py -k cross_validation).

Each row carries, besides the out-of-fold frame AUCs of the test videos (SAS and the raw
confidence), a training-data criterion: the fold's validation video (one of its training videos)
scored on every frame, weighted BCE and AUC, averaged over the folds. It is comparable across
sampling rates because it does not depend on which frames were sampled for training.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import test_two_stream as B  # noqa: E402  (folds, validation videos, weights)

import vadx  # noqa: E402
import vadx.data  # noqa: E402
from vadx import evaluation, metrics  # noqa: E402
from vadx.detector import VideoChunks  # noqa: E402
from vadx.ops.accumulator_score import accumulator_score  # noqa: E402

CACHE = B.CACHE / "ablation"
RESULTS = Path(__file__).parent / "results" / "two_stream_ped2_ablation.json"


def extract() -> None:
    objects = {**B.OBJECTS, "conf_threshold": 0.05}
    det = vadx.create("two-stream", backbone="mobilenet_v2", weights=str(B.W / "mobilenet_v2_imagenet.pth"),
                      object_detector=objects, source_fps=10.0, progress=False)
    det._setup()
    ds = vadx.data.load("ucsd-ped2", str(B.PED2))
    CACHE.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for kind, videos in (("test", ds.test), ("train", ds.train)):
        for v in videos:
            path = CACHE / f"{kind}_{v.name}.pt"
            if path.is_file():
                continue
            state: dict = {}
            out: dict[str, list] = {"avg_rgb": [], "avg_flow": [], "max_rgb": [], "max_flow": [], "det": []}
            with torch.inference_mode():
                for frames in VideoChunks(v, 32, torch.device("cpu")):
                    small, flow = det._inputs(state, frames)
                    for i in range(0, small.shape[0], det.feature_batch):
                        a, b = det.net_.feature_maps(small[i:i + det.feature_batch], flow[i:i + det.feature_batch])
                        out["avg_rgb"].append(a.mean((2, 3)))
                        out["avg_flow"].append(b.mean((2, 3)))
                        out["max_rgb"].append(a.amax((2, 3)))
                        out["max_flow"].append(b.amax((2, 3)))
                    for d in det._object_detector().detect(frames):  # [n, 6]: class, score, box
                        out["det"].append(torch.cat([d.class_ids.float()[:, None], d.scores[:, None], d.boxes], 1))
            saved = {k: torch.cat(x) for k, x in out.items() if k != "det"}
            saved["det"] = out["det"]
            torch.save(saved, path)
            print(kind, v.name, f"{time.perf_counter() - t0:.0f} s", flush=True)


def features(kind: str, name: str, pool: str, bag_confidence: float | None) -> dict:
    f = torch.load(CACHE / f"{kind}_{name}.pt", weights_only=True)
    T = f["avg_rgb"].shape[0]
    bag = None
    if bag_confidence is not None:
        bag = torch.stack([torch.bincount(d[d[:, 1] >= bag_confidence, 0].long(), minlength=80).float()
                           for d in f["det"]])
    return {"rgb": f[f"{pool}_rgb"], "flow": f[f"{pool}_flow"], "bag": bag, "index": torch.arange(T),
            "n_frames": torch.tensor([T])}


def cross_validate(pool: str, bag_confidence: float | None, anomaly_fps: float, normal_fps: float,
                   normal_videos: bool = True) -> dict:
    """One row; ``normal_videos=False`` trains without the normal-only training/ recordings (their
    held-out fold is still scored): tests whether the classifier learns the recording session."""
    from vadx_two_stream.classifier import make_classifier
    from vadx_two_stream.training import weighted_bce

    ds = vadx.data.load("ucsd-ped2", str(B.PED2))
    test, normal = {v.name: v for v in ds.test}, {v.name: v for v in ds.train}
    F = {n: features("test", n, pool, bag_confidence) for n in test}
    NF = {n: features("train", n, pool, bag_confidence) for n in normal}
    scores, conf, labels, folds = {}, {}, {}, []
    t0 = time.perf_counter()
    for k, held in enumerate(B.FOLDS):
        train_names = [n for n in sorted(test) if n not in held]
        val, held_normal = B.validation_video(train_names), B.normal_fold(k, list(normal))
        det = vadx.create("two-stream", backbone="mobilenet_v2", weights=str(B.W / "mobilenet_v2_imagenet.pth"),
                          source_fps=10.0, progress=False, max_epochs=30, head_lr=1e-4, seed=k,
                          anomaly_fps=anomaly_fps, normal_fps=normal_fps)
        det._setup()  # no object detector: the bag comes from the cached detections
        det.n_object_classes_ = 0 if bag_confidence is None else 80
        det.in_features_ = 2 * F["01"]["rgb"].shape[1] + det.n_object_classes_
        with det.seeded():
            det.net_.head = make_classifier(det.in_features_, det.hidden, det.dropout)
        sub = {}
        for n in train_names:
            lab = torch.as_tensor(test[n].labels).long()
            sub[n] = B._subset(F[n], lab, det.sample(lab, test[n].fps))
        zeros = {n: torch.zeros(len(normal[n]), dtype=torch.long) for n in normal}
        extra = [B._subset(NF[n], zeros[n], det.sample(zeros[n], normal[n].fps))
                 for n in sorted(normal) if n not in held_normal and normal_videos]
        det._complete_fit(det._train([sub[n] for n in train_names if n != val] + extra, [sub[val]],
                                     with_images=False))
        vl = torch.as_tensor(test[val].labels)
        keep = vl >= 0
        with torch.no_grad():
            vlog = det.net_.logit(F[val]["rgb"], F[val]["flow"], F[val]["bag"])[keep]
        val_all = float(weighted_bce(vlog, vl[keep].float(), det.normal_weight, det.anomaly_weight).mean())
        val_auc = metrics.evaluate([vlog], [vl[keep]]).frame_auc
        nu = det.step_per_frame(10.0)
        for n, f, lab in [(n, F[n], torch.as_tensor(test[n].labels)) for n in held] + \
                [(f"train_{n}", NF[n], zeros[n]) for n in held_normal]:
            with torch.no_grad():
                sigma = torch.sigmoid(det.net_.logit(f["rgb"], f["flow"], f["bag"]))
            scores[n], _ = accumulator_score(sigma, det.tau, nu, det.lb, det.ub, det.lb, det.sas_decay)
            conf[n], labels[n] = sigma, lab
        h = det.history_["phase1"]
        folds.append({"validation": val, "validation_all_frames_loss": val_all, "validation_auc": val_auc,
                      "epochs": h["epochs"], "best_epoch": h["best_epoch"]})
        print(k, folds[-1], f"{time.perf_counter() - t0:.0f} s", flush=True)
    names = sorted(n for n in scores if not n.startswith("train_"))
    every = sorted(scores)
    y = [labels[n] for n in names]
    c = metrics.evaluate([conf[n] for n in names], y, names=names)
    mean = lambda key: sum(f[key] for f in folds) / len(folds)  # noqa: E731
    return evaluation.bench_record(
        pool=pool, bag_min_confidence=bag_confidence, anomaly_fps=anomaly_fps, normal_fps=normal_fps,
        trained_on_normal_videos=normal_videos,
        criterion_validation_loss=mean("validation_all_frames_loss"),
        criterion_validation_auc=mean("validation_auc"),
        frame_auc_sas=metrics.evaluate([scores[n] for n in names], y, names=names).frame_auc,
        frame_auc_confidence=c.frame_auc,
        frame_auc_confidence_with_normal_videos=metrics.evaluate(
            [conf[n] for n in every], [labels[n] for n in every], names=every).frame_auc,
        per_video_auc_confidence={r["name"]: r["auc"] for r in c.per_video},
        folds=folds, seconds=round(time.perf_counter() - t0, 1), threads=torch.get_num_threads(),
        weights={"streams": "mobilenet_v2_imagenet.pth", "objects": "yolo-fastest-1.1-xl (COCO, Darknet)"},
        command="python bench/two_stream_ablation.py " + " ".join(sys.argv[1:]))


def finetune(fold: int, pool: str, normal_fps: float, max_epochs: int) -> dict:
    """Phase 1 + phase 2 on one fold with ``det.fit``; out-of-fold AUC before and after phase 2."""
    import vadx_two_stream.detector as D

    ds = vadx.data.load("ucsd-ped2", str(B.PED2))
    test, normal = {v.name: v for v in ds.test}, {v.name: v for v in ds.train}
    held, held_normal = B.FOLDS[fold], B.normal_fold(fold, list(normal))
    train_names = [n for n in sorted(test) if n not in held]
    val = B.validation_video(train_names)
    videos = [test[n] for n in train_names] + [normal[n] for n in sorted(normal) if n not in held_normal]
    labels = [torch.as_tensor(test[n].labels).long() for n in train_names] + \
        [torch.zeros(len(v), dtype=torch.long) for v in videos[len(train_names):]]
    det = B.make(max_epochs=30, head_lr=1e-4, seed=fold, pool=pool, normal_fps=normal_fps,
                 finetune=True, finetune_max_epochs=max_epochs, validation_videos=[train_names.index(val)])
    heads, phase_start = [], []
    run_phase = D.run_phase

    def recorded(**kw):  # the classifier after phase 1, and when each phase started
        phase_start.append(time.perf_counter())
        out = run_phase(**kw)
        heads.append({k: v.clone() for k, v in det.net_.head.state_dict().items()})
        return out

    D.run_phase = recorded
    t0 = time.perf_counter()
    try:
        det.fit(videos, labels)
    finally:
        D.run_phase = run_phase
    t_fit = time.perf_counter() - t0
    print("fit", round(t_fit), "s", json.dumps(det.history_), flush=True)
    if os.environ.get("VADX_ABLATION_SAVE"):  # keep the fine-tuned model (hours of CPU)
        det.save(os.environ["VADX_ABLATION_SAVE"])
    # phase 1 alone: its classifier on the cached features of the unchanged backbones
    tag = B.cache_tag(det)
    p1 = det._new_net(*(torch.nn.Identity(),) * 2, det.in_features_)
    p1.head.load_state_dict(heads[0])
    conf1, conf2, sas1, sas2, lab = {}, {}, {}, {}, {}
    t1 = time.perf_counter()
    for name, kind, v, y in [(n, "test", test[n], torch.as_tensor(test[n].labels)) for n in held] + \
            [(n, "train", normal[n], torch.zeros(len(normal[n]), dtype=torch.long)) for n in held_normal]:
        f = torch.load(B.CACHE / f"{tag}_{kind}_{name}.pt", weights_only=True)
        with torch.no_grad():
            c = torch.sigmoid(p1.eval().logit(f["rgb"], f["flow"], f["bag"]))
        name = f"{kind}_{name}"  # test and training videos share names ("01")
        conf1[name] = c
        sas1[name], _ = accumulator_score(c, det.tau, det.step_per_frame(v.fps), det.lb, det.ub, det.lb,
                                          det.sas_decay)
        s = det.score(v)
        conf2[name], sas2[name] = s.extras["confidence"], s.frame
        lab[name] = y
    t_score = time.perf_counter() - t1
    auc = lambda c, names: metrics.evaluate([c[n] for n in names], [lab[n] for n in names]).frame_auc  # noqa: E731
    every = [f"test_{n}" for n in held] + [f"train_{n}" for n in held_normal]
    held = [f"test_{n}" for n in held]
    h = det.history_
    return evaluation.bench_record(
        fold=fold, test_videos=held, normal_videos=held_normal, validation=val, pool=pool,
        normal_fps=normal_fps,
        frame_auc_confidence={"phase1": auc(conf1, held), "phase2": auc(conf2, held)},
        frame_auc_sas={"phase1": auc(sas1, held), "phase2": auc(sas2, held)},
        frame_auc_confidence_with_normal_videos={"phase1": auc(conf1, every), "phase2": auc(conf2, every)},
        best_validation_loss={"phase1": min(h["phase1"]["val_loss"]), "phase2": min(h["phase2"]["val_loss"])},
        history=h, n_train_samples=h["n_train_samples"],
        seconds={"fit": round(t_fit, 1), "phase2": round(t0 + t_fit - phase_start[1], 1),
                 "phase2_per_epoch": round((t0 + t_fit - phase_start[1]) / h["phase2"]["epochs"], 1),
                 "scoring_7_videos": round(t_score, 1)},
        threads=torch.get_num_threads(), input_size=det.input_size, batch_size=det.batch_size,
        finetune_lr=det.finetune_lr, patience=det.patience,
        weights={"streams": det.weights_info_, "objects": "yolo-fastest-1.1-xl (COCO, Darknet)"},
        command="python bench/two_stream_ablation.py " + " ".join(sys.argv[1:]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["extract", "cv", "finetune"])
    p.add_argument("--fold", type=int, default=0, help="finetune: which of the 4 folds")
    p.add_argument("--finetune-epochs", type=int, default=100, help="finetune: phase 2's most epochs")
    p.add_argument("--pool", choices=["avg", "max"], default="avg")
    p.add_argument("--bag-confidence", type=float, default=0.5, help="negative: no bag")
    p.add_argument("--anomaly-fps", type=float, default=10.0)
    p.add_argument("--normal-fps", type=float, default=3.0)
    p.add_argument("--without-normal-videos", action="store_true",
                   help="cv: train on the labelled test videos only (not the training/ recordings)")
    p.add_argument("--threads", type=int, default=int(os.environ.get("VADX_BENCH_THREADS", "1")))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.what == "extract":
        return extract()
    if a.what == "finetune":
        row = finetune(a.fold, a.pool, a.normal_fps, a.finetune_epochs)
        evaluation.write_result(RESULTS, {f"phase2,fold={a.fold},pool={a.pool},normal_fps={a.normal_fps:g}": row},
                                merge=True)
        print(json.dumps({k: v for k, v in row.items() if k != "history"}, indent=1))
        return
    bag = None if a.bag_confidence < 0 else a.bag_confidence
    row = cross_validate(a.pool, bag, a.anomaly_fps, a.normal_fps, not a.without_normal_videos)
    key = f"pool={a.pool},bag={bag},anomaly_fps={a.anomaly_fps:g},normal_fps={a.normal_fps:g}" + \
        (",without_normal_videos" if a.without_normal_videos else "")
    evaluation.write_result(RESULTS, {key: row}, merge=True)
    print(json.dumps({k: v for k, v in row.items() if k != "folds"}, indent=1))


if __name__ == "__main__":
    main()

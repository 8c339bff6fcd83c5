"""vadx.evaluation: fit/score timing and progress, evaluate() against vadx.metrics computed
directly, views, stages named on errors, and benchmark result files."""

import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import vadx
import vadx.cli
import vadx.data
from vadx import evaluation, metrics, progress
from vadx.evaluation import View
from vadx.postprocess import PostProcess

EVALUATE_KEYS = {"detector", "dataset", "frame_auc", "frame_eer", "pixel_auc", "pixel_eer", "video_f1",
                 "fps", "n_frames", "n_videos", "threshold", "seconds", "options", "per_video", "plots"}


class Brightness(vadx.Detector):
    """A tiny detector: a frame's score is its mean grey level's distance from the training mean;
    extras: that mean, and a 0/1 "bright" decision; maps: the per-pixel distance."""

    name = "brightness"

    def _fit(self, videos, labels):
        values = [f.float().mean() for v in videos for f in v]
        self.mean_ = torch.stack(values).mean()
        return None  # the base class scores the training videos for threshold_

    def _update(self, state, frames):
        grey = frames.float().mean(1)
        level = grey.flatten(1).mean(1)
        d = (level - self.mean_).abs()
        return vadx.Scores(frame=d, maps=(grey - self.mean_).abs(),
                           extras={"level": level, "bright": (level > self.mean_).long()})


class Supervised(Brightness):
    name = "supervised-brightness"
    supervised = True


@pytest.fixture(scope="module")
def ds():
    return vadx.data.load("synthetic", seed=2, n_train=2, n_test=3, n_frames=30, height=60, width=80)


@pytest.fixture
def bars(monkeypatch):
    """Every progress bar opened: a dict per bar (desc, shown, total, described, frames)."""
    opened = []

    class Recording(progress.Bar):
        def __init__(self, total, desc, unit, show, leave):
            self.log = {"desc": desc, "shown": show, "unit": unit, "described": [], "frames": 0}
            opened.append(self.log)
            super().__init__(total, desc, unit, show, leave)

        def update(self, n=1, **info):
            self.log["frames"] += n
            super().update(n, **info)

        def describe(self, desc):
            self.log["described"].append(desc)
            super().describe(desc)

        def close(self, *, clear=False):
            self.log["total"] = self.total
            super().close(clear=clear)

    monkeypatch.setattr(progress, "Bar", Recording)
    return opened


def _direct(det, ds, **kw):
    """The metrics through vadx.metrics alone, scoring with Detector.score."""
    ev = metrics.Evaluator(**kw)
    for v in ds.test:
        ev.add(det.score(v), v.labels, v.masks, name=v.name, video_label=v.video_label)
    return ev.result()


def test_evaluate_equals_the_metrics_computed_directly(ds, bars, tmp_path):
    det = Brightness()
    minmax = PostProcess(normalize="minmax")
    res = evaluation.evaluate(det, ds, plot_dir=tmp_path / "plots", views={
        "minmax": View(postprocess=minmax), "macro": View(average="macro", postprocess=minmax),
        "level": View(signal="level")})
    assert set(res) == EVALUATE_KEYS | {"views"}
    want = _direct(Brightness().fit(ds.train), ds, threshold=det.threshold_)
    assert res["threshold"] == pytest.approx(Brightness().fit(ds.train).threshold_)
    for key in ("frame_auc", "frame_eer", "pixel_auc", "pixel_eer", "video_f1"):
        assert res[key] == pytest.approx(getattr(want, key)), key
    assert res["pixel_auc"] is not None and res["video_f1"] is not None
    assert res["per_video"] == json.loads(json.dumps(want.per_video))
    assert (res["n_frames"], res["n_videos"]) == (90, 3)
    s = res["seconds"]
    assert s["fit"] > 0 and s["score"] > 0 and s["read"] >= 0 and res["fps"] == pytest.approx(90 / s["score"])
    o = res["options"]
    assert (o["average"], o["normalize"], o["threshold"], o["model"]) == ("micro", None, det.threshold_, None)
    assert o["dataset_layout"] == ds.layout and o["dataset_options"] == ds.options
    assert o["params"] == det.get_params() and o["device"] == "cpu"
    assert [Path(p).name for p in res["plots"]] == [f"{v.name}.png" for v in ds.test]
    assert all(Path(p).read_bytes()[:4] == b"\x89PNG" for p in res["plots"])
    json.dumps(res, allow_nan=False)  # plain JSON values

    views = res["views"]
    assert set(views) == {"minmax", "macro", "level"}
    assert views["minmax"]["frame_auc"] == pytest.approx(_direct(det, ds, postprocess=minmax).frame_auc)
    assert views["macro"]["frame_auc"] == pytest.approx(
        _direct(det, ds, average="macro", postprocess=minmax).frame_auc)
    assert views["macro"]["options"]["average"] == "macro" and views["minmax"]["pixel_auc"] is None
    levels = [det.score(v).extras["level"] for v in ds.test]
    assert views["level"]["frame_auc"] == pytest.approx(
        metrics.evaluate(levels, [v.labels for v in ds.test]).frame_auc)
    assert [r["auc"] for r in views["level"]["per_video"]] == pytest.approx(
        [metrics.roc_auc(lv, v.labels) for lv, v in zip(levels, ds.test)])

    # one bar for fitting (a second pass over the training videos for threshold_), one for scoring
    fit_bar, score_bar = bars
    assert (fit_bar["desc"], fit_bar["described"], fit_bar["unit"]) == (
        "fitting brightness", ["fitting brightness (pass 2)"], "frame")
    assert fit_bar["frames"] == fit_bar["total"] == 2 * 60
    assert (score_bar["desc"], score_bar["frames"], score_bar["total"]) == ("scoring brightness", 90, 90)


def test_evaluate_matches_the_example_plugin_through_the_cli(example_plugin_site, plugin_env, ds,
                                                            capsys):
    """`vadx evaluate --json` prints exactly evaluate()'s object (timings aside)."""
    plugin_env(example_plugin_site)
    det = vadx.create("frame-diff", min_std=2.0)
    res = evaluation.evaluate(det, ds, postprocess=PostProcess(sigma=1.5), average="macro")
    assert res["video_f1"] is None and res["options"]["threshold"] is None  # not raw scores
    rc = vadx.cli.main(["evaluate", "frame-diff", "--dataset", "synthetic", "--set", "min_std=2",
                        "--sigma", "1.5", "--average", "macro", "--json", "-q",
                        *[f"--dataset-opt={k}={json.dumps(v)}" for k, v in ds.options.items()]])
    printed = json.loads(capsys.readouterr().out)
    assert rc == 0 and set(printed) == EVALUATE_KEYS
    for r in (res, printed):
        r.pop("seconds"), r.pop("fps")
    assert printed == json.loads(json.dumps(res, default=str))
    want = _direct(det, ds, average="macro", postprocess=PostProcess(sigma=1.5))
    assert res["frame_auc"] == pytest.approx(want.frame_auc)
    assert res["pixel_auc"] == pytest.approx(want.pixel_auc)


def test_evaluate_without_fitting_on_video_and_maps(ds):
    det = Brightness().fit(ds.train)
    seen = []
    res = evaluation.evaluate(det, ds, fit=False, keep_maps=False,
                              on_video=lambda video, scores: seen.append((video.name, scores)))
    assert res["seconds"]["fit"] is None and res["pixel_auc"] is None  # no maps kept
    assert [n for n, _ in seen] == [v.name for v in ds.test]
    for (_, s), v in zip(seen, ds.test):
        assert s.maps is None and set(s.extras) == {"level", "bright"}
        torch.testing.assert_close(s.frame, det.score(v).frame)


def test_evaluate_errors(ds):
    det = Brightness().fit(ds.train)
    with pytest.raises(ValueError, match=r"view 'x': the scores have no extras\['nope'\]; they have: "
                                         r"level, bright"):
        evaluation.evaluate(det, ds, fit=False, views={"x": View(signal="nope")})
    with pytest.raises(ValueError, match="supervised, but the training videos of synthetic have no "
                                         "frame labels"):
        evaluation.evaluate(Supervised(), ds)


def test_supervised_detectors_get_the_training_labels(ds):
    # any object with a dataset's attributes will do: here the labelled test clips train
    labelled = SimpleNamespace(train=ds.test, test=ds.test, name="labelled", root=None,
                               layout="generated", options={})
    det = Supervised()
    got = []
    det._fit = lambda videos, labels: got.append(labels) or Brightness._fit(det, videos, labels)
    res = evaluation.evaluate(det, labelled, progress=False)
    assert [lab.tolist() for lab in got[0]] == [v.labels.tolist() for v in ds.test]
    assert res["dataset"] == "labelled" and res["options"]["dataset_root"] is None


class _SlowVideo:
    """A re-iterable video whose chunks take ``delay`` seconds each to "decode"."""

    def __init__(self, frames, chunk, delay):
        self.frames, self.chunk, self.delay = frames, chunk, delay

    def __len__(self):
        return len(self.frames)

    def __iter__(self):
        for a in range(0, len(self.frames), self.chunk):
            time.sleep(self.delay)
            yield self.frames[a:a + self.chunk]


def test_score_excludes_reading_and_keeps_maps_only_when_asked(ds, bars):
    det = Brightness(chunk_size=4).fit(ds.train)
    frames = ds.test[0].read()
    want = det.score(frames)
    slow = _SlowVideo(frames, 10, 0.05)  # 3 chunks of 10 frames, scored 4 at a time
    with evaluation.Meter("scoring", 60) as meter:
        s, seconds = evaluation.score(det, slow, meter=meter)
        t0 = time.perf_counter()
        s2, _ = evaluation.score(det, slow, keep_maps=True, meter=meter)
        wall = time.perf_counter() - t0
    assert meter.read_seconds >= 6 * 0.05 and seconds < 0.15 and wall >= 0.15
    assert s.maps is None and s2.maps.shape == (30, 60, 80)
    torch.testing.assert_close(s.frame, want.frame)
    torch.testing.assert_close(s2.maps, want.maps)
    torch.testing.assert_close(s.extras["bright"], want.extras["bright"])
    assert [(b["desc"], b["frames"]) for b in bars] == [("scoring", 60)]

    # alone: its own bar; whole tensors and arrays are one chunk, not T frames
    for video in (frames, frames.numpy()):
        s, _ = evaluation.score(det, video)
        torch.testing.assert_close(s.frame, want.frame)
    assert [(b["desc"], b["frames"]) for b in bars[1:]] == [("scoring video with brightness", 30)] * 2


def test_fit_returns_seconds_and_accepts_frames():
    g = torch.Generator().manual_seed(0)
    videos = [torch.randint(0, 255, (12, 1, 8, 8), dtype=torch.uint8, generator=g) for _ in range(2)]
    det = Brightness()
    seconds = evaluation.fit(det, videos)
    assert seconds > 0 and det.threshold_ is not None
    assert det.mean_ == pytest.approx(Brightness().fit(videos).mean_)
    assert evaluation.count_frames(videos) == 24 and evaluation.count_frames([iter([])]) is None


def test_bars_follow_progress_and_silenced(ds, bars):
    evaluation.evaluate(Brightness(), ds, progress=False)
    with progress.silenced():  # what `vadx --quiet` runs commands in
        evaluation.evaluate(Brightness(), ds)
    assert len(bars) == 4 and not any(b["shown"] for b in bars)
    bars.clear()
    evaluation.evaluate(Brightness(), ds)
    assert [b["shown"] for b in bars] == [True, True]
    bars.clear()
    det = Brightness()
    det.progress = False  # the detector's own switch is the default
    evaluation.evaluate(det, ds)
    assert [b["shown"] for b in bars] == [False, False]


def test_errors_keep_their_type_and_name_the_stage(ds):
    det = Brightness()
    det._fit = lambda videos, labels: {}["mean_"]
    with pytest.raises(KeyError) as exc:
        evaluation.fit(det, ds.train, progress=False)
    assert exc.value.vadx_stage == "fitting brightness"
    assert vadx.cli._one_line(exc.value) == ("fitting brightness: KeyError: mean_ (run with --debug "
                                             "for the traceback)")

    det = Brightness().fit(ds.train)
    det._update = lambda state, frames: 1 / 0
    with pytest.raises(ZeroDivisionError) as exc:
        evaluation.evaluate(det, ds, fit=False, progress=False)
    assert exc.value.vadx_stage == f"scoring {ds.test[0].name} with brightness"


def test_bench_record_and_write_result(tmp_path):
    det = Brightness()
    assert evaluation.weights_info(det) is None
    record = evaluation.bench_record(det, frame_auc=0.75, command="pytest bench/x.py")
    assert record == {"frame_auc": 0.75, "params": det.get_params(), "command": "pytest bench/x.py"}

    # weights as a detector records them: weights_info_, or another fitted record with a SHA-256
    info = {"backbone": "alexnet", "file": "alexnet-owt-7be5be79.pth", "sha256": "7be5", "verified": True}
    det.fcn_info_ = dict(info, relu6=False)
    assert evaluation.weights_info(det) == dict(info, relu6=False)
    det.weights_info_ = info
    assert evaluation.weights_info(det) == info
    record = evaluation.bench_record(det, schedule={"epochs": 2}, seconds={"fit": 1.5}, frame_auc=0.5)
    assert list(record) == ["frame_auc", "params", "weights", "schedule", "seconds"]
    assert record["weights"] == info and record["schedule"] == {"epochs": 2}
    assert evaluation.bench_record(det, weights="mine")["weights"] == "mine"  # explicit wins
    assert evaluation.bench_record(None, a=1) == {"a": 1}

    path = tmp_path / "results" / "x.json"
    evaluation.write_result(path, {"tsc": {"auc": 0.5}})
    evaluation.write_result(path, {"srnn": {"auc": 0.6}, "path": tmp_path}, merge=True)
    assert json.loads(path.read_text()) == {"tsc": {"auc": 0.5}, "srnn": {"auc": 0.6},
                                            "path": str(tmp_path)}
    evaluation.write_result(path, {"only": 1})
    assert json.loads(path.read_text()) == {"only": 1} and path.read_text().endswith("}\n")


def test_no_tqdm_outside_vadx_progress():
    for module in (vadx.cli, evaluation):
        assert "tqdm" not in Path(module.__file__).read_text(), module.__name__

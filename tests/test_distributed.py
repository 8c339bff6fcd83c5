"""vadx.distributed / `vadx score --many`: a local Ray cluster with 2 CPUs gives exactly the
single-process scores; a rerun skips finished videos; a failing video is retried and reported
while the others are scored; a changed input is scored again; bad manifests are named."""

import csv
import json
import os
import shutil

import cv2
import numpy as np
import pytest
import ray
import torch
from live_helpers import model_file, scene

import vadx
from vadx.cli import main
from vadx.distributed import read_manifest, score_archive
from vadx.io import open_video, write_video


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster (2 CPUs) for the module; score_archive uses it as it is."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Three videos of different lengths (MJPEG AVI) and a corrupt one, listed in a manifest
    with a comment, a blank line and relative paths."""
    root = tmp_path_factory.mktemp("archive")
    (root / "cams").mkdir()
    for i, (video, n) in enumerate(zip(scene().test, (100, 60, 30))):
        write_video(root / "cams" / f"cam{i}.avi", video.read(0, n), fps=10)
    (root / "cams" / "broken.avi").write_bytes(b"RIFF" + os.urandom(2000))
    (root / "archive.txt").write_text(
        "# the yard, Tuesday\ncams/cam0.avi\ncams/cam1.avi\n\ncams/broken.avi\ncams/cam2.avi\n")
    return root


def read_scores(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return np.array([float(r["score"]) for r in rows], np.float32), rows


def test_ray_equals_one_process_resumes_and_reports_failures(cluster, archive, tmp_path):
    model = model_file()
    archive = shutil.copytree(archive, tmp_path / "archive")  # this test repairs a video
    manifest = archive / "archive.txt"
    one = score_archive(model, manifest, tmp_path / "one", progress=False)
    two = score_archive(model, manifest, tmp_path / "ray", ray=True, workers=2, progress=False)
    for s in (one, two):
        status = {r["name"]: (r["status"], r["attempts"]) for r in s["videos"]}
        # the broken video: tried twice (retries=1), reported; the others unaffected
        assert status == {"cam0": ("scored", 1), "cam1": ("scored", 1), "cam2": ("scored", 1),
                          "broken": ("failed", 2)}
        bad = next(r for r in s["videos"] if r["name"] == "broken")
        assert "VideoReadError" in bad["error"] and "broken.avi" in bad["error"]
    assert two["workers"] == 2
    assert len({r["worker"] for r in two["videos"] if r["worker"]}) == 2  # both workers worked
    det = vadx.load(model)
    for name, n in (("cam0", 100), ("cam1", 60), ("cam2", 30)):
        a = (tmp_path / "one" / f"{name}.csv").read_bytes()
        assert (tmp_path / "ray" / f"{name}.csv").read_bytes() == a  # identical files
        scores, rows = read_scores(tmp_path / "ray" / f"{name}.csv")
        reference = det.score(open_video(archive / "cams" / f"{name}.avi", grayscale=True)).frame
        assert len(rows) == n and torch.equal(torch.from_numpy(scores), reference)
        assert rows[0]["video"] == str(archive / "cams" / f"{name}.avi")
        assert [int(r["alarm"]) for r in rows] == (reference > det.threshold_).int().tolist()
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert (summary["scored"], summary["failed"]) == (3, 1)

    # a rerun on Ray skips the finished videos and tries the failed one again
    again = score_archive(model, manifest, tmp_path / "ray", ray=True, workers=2, progress=False)
    assert {r["name"]: r["status"] for r in again["videos"]} == \
        {"cam0": "skipped", "cam1": "skipped", "cam2": "skipped", "broken": "failed"}
    # repaired, it is scored on the next run, and only it
    shutil.copy(archive / "cams" / "cam2.avi", archive / "cams" / "broken.avi")
    fixed = score_archive(model, manifest, tmp_path / "ray", ray=True, workers=2, progress=False)
    assert {r["name"]: r["status"] for r in fixed["videos"]} == \
        {"cam0": "skipped", "cam1": "skipped", "cam2": "skipped", "broken": "scored"}
    assert read_scores(tmp_path / "ray" / "broken.csv")[1][-1]["frame"] == "29"
    assert np.array_equal(read_scores(tmp_path / "ray" / "broken.csv")[0],
                          read_scores(tmp_path / "ray" / "cam2.csv")[0])  # same frames, scores


def test_changed_input_or_model_is_scored_again(archive, tmp_path):
    model = model_file()
    videos = [archive / "cams" / "cam1.avi", archive / "cams" / "cam2.avi"]
    first = score_archive(model, videos, tmp_path, progress=False, plot="{name}.png")
    assert [r["status"] for r in first["videos"]] == ["scored", "scored"]
    assert (tmp_path / "cam1.png").stat().st_size > 0
    os.utime(videos[1])  # touched: the record no longer matches the file
    second = score_archive(model, videos, tmp_path, progress=False, plot="{name}.png")
    assert [r["status"] for r in second["videos"]] == ["skipped", "scored"]
    (tmp_path / "cam1.png").unlink()  # an output gone: scored again
    third = score_archive(model, videos, tmp_path, progress=False, plot="{name}.png")
    assert [r["status"] for r in third["videos"]] == ["scored", "skipped"]
    other = tmp_path / "other.vadx"  # another model file: everything again
    det = vadx.load(model)
    det.threshold_ = det.threshold_ * 2
    det.save(other)
    fourth = score_archive(other, videos, tmp_path, progress=False, plot="{name}.png")
    assert [r["status"] for r in fourth["videos"]] == ["scored", "scored"]


def test_bad_manifest_and_options_are_named(tmp_path, archive, capsys):
    bad = tmp_path / "m.txt"
    bad.write_text(f"{archive / 'cams' / 'cam0.avi'}\n# fine\nmissing.avi\n")
    with pytest.raises(ValueError, match=r"m\.txt line 3: expected a video file or frame folder, "
                                         r"got 'missing\.avi' \(not found"):
        read_manifest(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(ValueError, match=r"expected one video path per line, got no video"):
        read_manifest(empty)
    with pytest.raises(FileNotFoundError, match=r"manifest \(--many\) not found"):
        read_manifest(tmp_path / "nope.txt")
    model = model_file()
    with pytest.raises(ValueError, match=r"retries must be an int >= 0, got -1"):
        score_archive(model, archive / "archive.txt", tmp_path / "o", retries=-1)
    with pytest.raises(ValueError, match=r"address applies with ray=True"):
        score_archive(model, archive / "archive.txt", tmp_path / "o", address="auto")
    with pytest.raises(ValueError, match=r"plot must end in one of"):
        score_archive(model, archive / "archive.txt", tmp_path / "o", plot="{name}.txt")
    # the command: usage errors exit 2, runtime errors 1 with one line
    for argv, message in [
        (["score", str(model), "--many", str(archive / "archive.txt")], "--out: required with --many"),
        (["score", str(model), "in.avi", "--many", str(archive / "archive.txt"), "--out", "d"],
         "give INPUTs or --many MANIFEST, not both"),
        (["score", str(model)], "required: INPUT (or --many MANIFEST)"),
        (["score", str(model), "--ray"], "--ray: applies with --many MANIFEST"),
    ]:
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err
    assert main(["score", str(model), "--many", str(bad), "--out", str(tmp_path / "o")]) == 1
    assert "line 3: expected a video file or frame folder" in capsys.readouterr().err


def test_score_many_command_on_ray(cluster, archive, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["-q", "score", str(model_file()), "--many", str(archive / "archive.txt"),
                 "--out", str(out), "--ray", "--workers", "2", "--retries", "0",
                 "--overlay", "{name}.mp4"])
    text = capsys.readouterr().out
    assert code == 1  # the broken video failed (once: --retries 0)
    assert "3 scored, 0 skipped (finished earlier), 1 failed, on 2 workers (Ray)" in text
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [(r["name"], r["status"], r["attempts"]) for r in rows] == [
        ("cam0", "scored", "1"), ("cam1", "scored", "1"), ("broken", "failed", "1"),
        ("cam2", "scored", "1")]
    cap = cv2.VideoCapture(str(out / "cam2.mp4"))  # written by a worker
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 30 and not (out / "broken.mp4").exists()

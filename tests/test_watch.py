"""vadx watch: events with hysteresis, a real camera stream on loopback (MJPEG over HTTP, see
tests/mjpeg_server.py) scored by the command in a real process and stopped by SIGTERM, a server
restart and a growing file watched together in one process, and bad arguments."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import cv2
import pytest
from live_helpers import anomaly_clip, model_file
from mjpeg_server import MJPEGServer

from vadx.cli import main
from vadx.watch import EventTracker, camera_names, watch

ONSET = 25  # the clip's cart enters here (live_helpers.anomaly_clip) ...
SEEN = 41  # ... and scores above threshold_ from here on (offline)


def records(path):
    return [json.loads(line) for line in open(path)]


# ---------------------------------------------------------------- hysteresis
def run(tracker, scores, start=0):
    out = []
    for i, s in enumerate(scores, start):
        out += tracker.feed(i, float(i), s)
    return out


def test_hysteresis_opens_at_threshold_and_closes_after_n_frames_below():
    t = EventTracker(1.0, close_after=3)
    got = run(t, [0, 2, 0, 0, 3, 5, 0.5, 1.0, 0.9, 0, 0])
    assert [k for k, _ in got] == ["open", "close"]
    ev = got[1][1]
    # the two-frame dip at 2-3 did not split it; it ends at its last frame above (5)
    assert (ev["start_frame"], ev["end_frame"], ev["peak_frame"], ev["peak_score"]) == (1, 5, 5, 5)
    assert ev["frames"] == 5 and ev["above"] == 3 and ev["closed_by"] == "below_threshold"
    assert t.current is None


def test_hysteresis_open_after_ignores_single_spikes_and_close_ends_an_open_event():
    t = EventTracker(1.0, open_after=2, close_after=2)
    assert run(t, [2, 0, 2, 0, 0]) == []  # single frames above never open
    got = run(t, [2, 3, 4], start=5)
    assert [k for k, _ in got] == ["open"] and got[0][1]["start_frame"] == 5
    ev = t.close("shutdown")
    assert (ev["start_frame"], ev["end_frame"], ev["peak_frame"], ev["closed_by"]) == (5, 7, 7, "shutdown")
    assert t.close("shutdown") is None
    assert run(EventTracker(1.0), [1.0, float("nan")]) == []  # at the threshold is not above


def test_bad_hysteresis_and_names():
    with pytest.raises(ValueError, match=r"close_after must be an int >= 1, got 0"):
        EventTracker(1.0, close_after=0)
    with pytest.raises(ValueError, match=r"open_after must be an int >= 1, got -2"):
        EventTracker(1.0, open_after=-2)
    with pytest.raises(ValueError, match=r"threshold must be a finite number, got nan"):
        EventTracker(float("nan"))
    assert camera_names(["rtsp://10.0.0.5:554/cam1", "0", "-", "/x/yard.ts", "/y/yard.ts"]) == \
        ["10.0.0.5_554_cam1", "webcam0", "stdin", "yard", "yard-2"]


# ---------------------------------------------------------------- the command, a real stream
def test_watch_command_on_a_live_stream_writes_events_and_stops_cleanly_on_sigterm(tmp_path):
    frames, labels = anomaly_clip()
    model = model_file()
    events, rec, snaps = tmp_path / "events.jsonl", tmp_path / "rec", tmp_path / "snaps"
    with MJPEGServer(frames, fps=25) as srv:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vadx", "watch", str(model), srv.url, "--name", "gate",
             "--events", str(events), "--record", str(rec), "--snapshots", str(snaps),
             "--close-after", "5", "--status-interval", "0.5"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while len(srv.sent) < len(frames) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(srv.sent) == len(frames), "the watcher did not read the whole clip"
            time.sleep(1.5)  # let it score the last frames; the event is still open
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped: SIGTERM" in out
    assert "vadx watch: gate: streaming" in err  # the status lines
    recs = records(events)
    assert [r["type"] for r in recs][0] == "watch_start" and recs[-1]["type"] == "watch_end"
    assert recs[-1]["stopped_by"] == "SIGTERM"
    end = next(r for r in recs if r["type"] == "camera_end")
    # nothing lost silently: every captured frame was scored, dropped (counted) or discarded
    assert end["frames"] == len(frames) == end["scored"] + end["dropped"] + end["discarded"]
    assert end["dropped"] == sum(r["frames"] for r in recs if r["type"] == "drop")
    starts = [r for r in recs if r["type"] == "event_start"]
    evs = [r for r in recs if r["type"] == "event"]
    assert len(starts) == len(evs) >= 1
    main_ev = max(evs, key=lambda e: e["peak_score"])
    # the anomaly (frames 25-99) is what set it off, and it was still on at the stop
    assert ONSET <= main_ev["start_frame"] <= SEEN + 10 and labels[main_ev["peak_frame"]] == 1
    assert main_ev["closed_by"] == "shutdown" and main_ev["end_frame"] >= 90
    assert all(labels[e["start_frame"]] == 1 for e in evs)  # no event before the cart came
    assert main_ev["peak_score"] > main_ev["threshold"] and main_ev["start"].endswith("+00:00")
    assert 0 <= starts[0]["latency_s"] < 5
    snap = cv2.imread(main_ev["snapshot"], cv2.IMREAD_UNCHANGED)
    assert snap is not None and snap.shape == (120, 160)
    cap = cv2.VideoCapture(str(rec / "gate.mp4"))  # finished at the signal: playable
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == end["scored"] > 0
    assert not [p for p in rec.iterdir() if p.name != "gate.mp4"]  # no temporary left


# ---------------------------------------------------------------- two cameras in one process
def test_two_cameras_a_restarted_stream_and_a_growing_file(tmp_path):
    frames, labels = anomaly_clip()
    growing = tmp_path / "yard.mjpeg"
    growing.write_bytes(b"")
    events = tmp_path / "events.jsonl"

    def record():  # a recorder appending the clip to a file, 50 frames a second
        with open(growing, "ab") as f:
            for fr in frames:
                f.write(cv2.imencode(".jpg", fr[0], [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
                f.flush()
                time.sleep(0.02)

    srv = MJPEGServer(frames, fps=25).start()

    def restart():  # the camera goes away for 0.8 s after 30 frames
        while len(srv.sent) < 30:
            time.sleep(0.02)
        srv.stop()
        time.sleep(0.8)
        srv.start()

    helpers = [threading.Thread(target=record), threading.Thread(target=restart)]
    for h in helpers:
        h.start()
    try:
        summary = watch(model_file(), [srv.url, growing], names=["gate", "yard"], events=events,
                        close_after=5, status=None, backoff=0.2, max_backoff=0.4,
                        max_reconnects=6,  # 2.2 s: covers the 0.8 s outage with room to spare
                        idle_timeout=1.0, handle_signals=False)
    finally:
        for h in helpers:
            h.join()
        srv.stop()
    gate, yard = summary["cameras"]
    assert summary["stopped_by"] == "sources ended"
    # the stream: reconnected once, then gave up after its last frame (max_reconnects)
    assert gate["reconnects"] >= 1 and gate["state"] == "failed" and "gave up" in gate["error"]
    assert 30 <= gate["frames"] < len(frames)  # frames due while it was down were missed
    # the file: every frame, none dropped (files wait instead), ended once idle
    assert yard["state"] == "ended" and yard["frames"] == yard["scored"] == len(frames)
    recs = records(events)
    kinds = [(r.get("camera"), r["type"]) for r in recs]
    for k in ("disconnected", "reconnect", "reconnected", "failed"):
        assert ("gate", k) in kinds
    assert not [k for k in kinds if k[0] == "yard" and k[1] in ("drop", "reconnect")]
    for cam in ("gate", "yard"):
        end = next(r for r in recs if r["type"] == "camera_end" and r["camera"] == cam)
        assert end["frames"] == end["scored"] + end["dropped"] + end["discarded"]
    yard_evs = [r for r in recs if r["type"] == "event" and r["camera"] == "yard"]
    assert yard_evs and all(labels[e["start_frame"]] == 1 for e in yard_evs)
    assert yard_evs[-1]["closed_by"] == "stream_end" and yard_evs[-1]["end_frame"] >= 90


def test_watch_bad_arguments(tmp_path, capsys):
    model = str(model_file())
    assert main(["watch", model, "ftp://127.0.0.1/x"]) == 1
    assert "source: unknown URL scheme 'ftp'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["watch", model, "http://127.0.0.1:9/x", "--close-after", "0"])
    assert e.value.code == 2 and "--close-after: must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["watch", model, "http://127.0.0.1:9/x", "--name", "a", "--name", "b"])
    assert "--name: give one per SOURCE (1), got 2" in capsys.readouterr().err
    assert main(["watch", model, "http://127.0.0.1:9/x", "--events", model]) == 1
    assert "refusing to overwrite an input" in capsys.readouterr().err
    assert os.path.getsize(model) > 0
    assert main(["score", model, "rtsp://127.0.0.1:8554/cam"]) == 1  # not "not found"
    assert "is a live source (stream URL, webcam or stdin): score it with `vadx watch" in \
        capsys.readouterr().err

"""vadx.io.open_stream on real sources on loopback: an MJPEG-over-HTTP camera served by the test
(tests/mjpeg_server.py says why not RTSP), restarted mid-stream; a growing file; the bounded
queue's drop-oldest policy; bad arguments."""

import threading
import time

import cv2
import numpy as np
import pytest
import torch
from mjpeg_server import MJPEGServer

from vadx.io import StreamChunk, open_stream


def ramp(n, h=48, w=64):
    """Grey frames whose value encodes their number (4 * i), which JPEG keeps within +-2."""
    return np.stack([np.full((1, h, w), 4 * i, np.uint8) for i in range(n)])


def numbers(frames: torch.Tensor) -> list[int]:
    return [int(round(float(f.float().mean()) / 4)) for f in frames]


def take_all(stream, timeout=30.0) -> list[StreamChunk]:
    chunks, t0 = [], time.monotonic()
    for c in stream.chunks():
        chunks.append(c)
        assert time.monotonic() - t0 < timeout, "stream did not end"
    return chunks


def test_bad_sources_and_options_are_named():
    with pytest.raises(ValueError, match=r"source: unknown URL scheme 'ftp'"):
        open_stream("ftp://127.0.0.1/cam")
    with pytest.raises(ValueError, match=r"webcam index must be an int >= 0, got -1"):
        open_stream(-1)
    with pytest.raises(FileNotFoundError, match=r"source not found: 'no-such\.ts'"):
        open_stream("no-such.ts")
    with pytest.raises(TypeError, match=r"source must be a URL.*got list"):
        open_stream([1, 2])
    url = "http://127.0.0.1:9/cam.mjpg"  # nothing is opened before the options are checked
    for kwargs, message in [
        (dict(queue_size=0), r"queue_size must be an int >= 1 \(frames\), got 0"),
        (dict(queue_size=-3), r"queue_size must be an int >= 1 \(frames\), got -3"),
        (dict(drop="newest"), r"drop must be None \(by source\), 'oldest' or 'never', got 'newest'"),
        (dict(backoff=0), r"backoff must be a finite number > 0, got 0"),
        (dict(backoff=2.0, max_backoff=1.0), r"max_backoff must be >= backoff \(2.0\), got 1.0"),
        (dict(max_reconnects=-1), r"max_reconnects must be None \(no limit\) or an int >= 0"),
        (dict(follow=True), r"follow applies to file sources; source .* is a network"),
        (dict(chunk_size=0), r"chunk_size must be an int >= 1, got 0"),
        (dict(idle_timeout=-1), r"idle_timeout must be None or a finite number > 0, got -1"),
        (dict(fps=0), r"fps must be None or a finite number > 0 \(frames per second\), got 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            open_stream(url, **kwargs)


def test_http_mjpeg_frames_in_order_with_capture_times():
    with MJPEGServer(ramp(30), fps=50) as srv, \
            open_stream(srv.url, grayscale=True, chunk_size=4, max_reconnects=0) as cam:
        chunks = take_all(cam)
    frames = torch.cat([c.frames for c in chunks])
    assert frames.shape == (30, 1, 48, 64) and frames.dtype == torch.uint8
    assert numbers(frames) == list(range(30))
    assert torch.cat([c.index for c in chunks]).tolist() == list(range(30))
    times = torch.cat([c.time for c in chunks])
    assert (times.diff() >= 0).all() and abs(float(times[0]) - time.time()) < 30
    assert all(len(c) <= 4 for c in chunks)
    # the server closed the stream after its last frame; max_reconnects=0 gives up at once
    assert cam.state == "failed" and "gave up after 0 reconnect attempts" in cam.error
    assert cam.frames == cam.delivered == 30 and cam.dropped == 0


def test_reconnects_after_the_server_restarts():
    srv = MJPEGServer(ramp(60), fps=25).start()
    try:
        with open_stream(srv.url, grayscale=True, backoff=0.2, max_reconnects=4) as cam:
            got = []
            for c in cam.chunks():
                got += numbers(c.frames)
                if len(got) >= 10 and srv.connections == 1:  # the camera goes away for 0.6 s
                    srv.stop()
                    time.sleep(0.6)
                    srv.start()
            incidents = cam.pop_incidents()
    finally:
        srv.stop()
    assert srv.connections >= 2 and cam.reconnects >= 1
    kinds = [i["type"] for i in incidents]
    assert kinds.index("disconnected") < kinds.index("reconnect") < kinds.index("reconnected")
    assert kinds[-1] == "failed"  # after the last frame the server is gone for good
    # frames before and after the gap, in order; those due while it was down are missed
    assert got == sorted(got) and got[0] == 0 and got[-1] == 59
    assert 10 <= len(got) < 60 and cam.frames == len(got) and cam.dropped == 0


def test_drop_oldest_when_the_consumer_lags():
    with MJPEGServer(ramp(40), fps=200) as srv:
        cam = open_stream(srv.url, grayscale=True, queue_size=4, chunk_size=10, max_reconnects=0)
        deadline = time.monotonic() + 20
        while cam.state != "failed" and time.monotonic() < deadline:  # read nothing meanwhile
            time.sleep(0.05)
        chunks = take_all(cam)
        cam.close()
    assert cam.frames == 40 and cam.dropped == 36 and cam.delivered == 4
    (chunk,) = chunks
    assert numbers(chunk.frames) == [36, 37, 38, 39] and chunk.index.tolist() == [36, 37, 38, 39]
    assert chunk.dropped == 36
    drops = [i for i in cam.pop_incidents() if i["type"] == "drop"]
    assert drops == [dict(drops[0], frames=36, first_frame=0, last_frame=35)]


def test_growing_file_is_followed_until_idle(tmp_path):
    path = tmp_path / "rec.mjpeg"
    path.write_bytes(b"")
    frames = ramp(60)

    def record():  # a recorder appending JPEG frames, 100 a second
        with open(path, "ab") as f:
            for fr in frames:
                f.write(cv2.imencode(".jpg", fr[0], [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
                f.flush()
                time.sleep(0.01)

    writer = threading.Thread(target=record)
    writer.start()
    with open_stream(path, grayscale=True, idle_timeout=1.0) as cam:
        assert cam.follow and cam.drop == "never"
        chunks = take_all(cam)
    writer.join()
    got = torch.cat([c.frames for c in chunks])
    assert numbers(got) == list(range(60)) and cam.state == "ended" and cam.dropped == 0


def test_a_file_never_drops_frames(tmp_path):
    from vadx.io import write_video

    path = write_video(tmp_path / "clip.avi", torch.from_numpy(ramp(30)), fps=10)
    with open_stream(path, grayscale=True, queue_size=2, chunk_size=1) as cam:
        assert not cam.follow  # AVI keeps its index at the end: read as written
        got = []
        for c in cam.chunks():
            time.sleep(0.005)  # slower than decoding: capture must wait, not drop
            got += numbers(c.frames)
    assert got == list(range(30)) and cam.dropped == 0 and cam.frames == 30

"""A live camera on loopback for tests and benchmarks: MJPEG over HTTP, served from a thread.

Why MJPEG over HTTP and not RTSP: no RTSP server installs from the package registries this
project uses (MediaMTX is a Go binary, not a PyPI or Debian package here; the PyPI RTSP packages
are clients or need an FFmpeg binary), while OpenCV's FFmpeg backend reads
``multipart/x-mixed-replace`` MJPEG over HTTP, which many IP cameras also serve, through the
same network code path (``cv2.VideoCapture(url, cv2.CAP_FFMPEG)``) that RTSP takes.

Like a camera, the server runs on a clock: frame ``i`` is due at ``t0 + i / fps`` with ``t0``
the first client's connection (so a test can start the server before its client), and every
client gets the frames due from the moment it connects. :meth:`stop` closes the port and every
connection (frames due meanwhile are missed, as from a camera that went away); :meth:`start` opens
the same port again on the same clock. A connection gets every frame from the one due when it opened, in order (a frame
sent late, when the machine is busy, is sent at once, not skipped). After the last frame each
connection is closed.
``sent[i]`` records when frame ``i`` was first written to a client (``time.monotonic()``).
"""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = b"vadxframe"


class MJPEGServer:
    def __init__(self, frames, fps: float = 10.0, port: int = 0, quality: int = 95):
        """``frames``: uint8 ``[T, C, H, W]`` (tensor or array), C = 1 or 3 (RGB)."""
        frames = np.asarray(frames)
        self.jpegs = []
        for f in frames:
            img = f[0] if f.shape[0] == 1 else np.ascontiguousarray(f.transpose(1, 2, 0)[:, :, ::-1])
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
            assert ok
            self.jpegs.append(buf.tobytes())
        self.fps, self.port = float(fps), port
        self.t0: float | None = None
        self.sent: dict[int, float] = {}
        self.connections = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._closing = threading.Event()
        self._sockets: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cam.mjpg"

    def due(self) -> int:
        """The index of the frame due now (0 before the first client)."""
        if self.t0 is None:
            return 0
        return int((time.monotonic() - self.t0) * self.fps)

    def start(self) -> MJPEGServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                with owner._lock:
                    owner.connections += 1
                    owner._sockets.add(self.connection)
                    if owner.t0 is None:
                        owner.t0 = time.monotonic()
                self.send_response(200)
                self.send_header("Content-Type",
                                 f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
                self.end_headers()
                i = owner.due()
                try:
                    while i < len(owner.jpegs) and not owner._closing.is_set():
                        wait = owner.t0 + i / owner.fps - time.monotonic()
                        if wait > 0:
                            if owner._closing.wait(wait):
                                break
                        jpg = owner.jpegs[i]
                        self.wfile.write(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n"
                                         b"Content-Length: %d\r\n\r\n" % len(jpg) + jpg + b"\r\n")
                        self.wfile.flush()
                        owner.sent.setdefault(i, time.monotonic())
                        # every frame in order, late ones at once: a server thread that woke
                        # late (a busy machine) must not lose frames, or the tests could not
                        # tell its losses from the client's
                        i += 1
                except OSError:
                    pass
                finally:
                    with owner._lock:
                        owner._sockets.discard(self.connection)

            def log_message(self, *args):
                pass

        self._closing.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        # a short poll: stop() returns (and the port closes) within 50 ms, not 500
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                         name="mjpeg-server").start()
        return self

    def stop(self) -> None:
        """Close the port and every open connection."""
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            for s in list(self._sockets):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __enter__(self) -> MJPEGServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

"""Reading videos and frame folders in bounded memory; writing videos, overlays and plots.

>>> reader = vadx.io.open_video("cam.mp4", chunk_size=64, grayscale=True, size=(240, 360))
>>> scores = detector.score(reader)        # the reader is re-iterable: each pass re-opens the file
>>> vadx.io.write_overlay("cam_scored.mp4", reader, scores, threshold=detector.threshold_)
>>> vadx.io.plot_scores("cam_scores.png", scores, labels, threshold=detector.threshold_)
>>> camera = vadx.io.open_stream("rtsp://10.0.0.5/cam")  # live: chunks with capture times
"""

from vadx.io.readers import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    ArrayReader,
    FileReader,
    FolderReader,
    VideoReader,
    VideoReadError,
    image_size,
    list_frames,
    natural_key,
    open_video,
    read_video,
)
from vadx.io.stream import LiveStream, StreamChunk, open_stream
from vadx.io.writers import (
    FOURCC,
    NO_MAPS_LABEL,
    PLOT_FORMATS,
    plot_scores,
    write_frames,
    write_overlay,
    write_video,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FOURCC",
    "IMAGE_EXTENSIONS",
    "NO_MAPS_LABEL",
    "PLOT_FORMATS",
    "VIDEO_EXTENSIONS",
    "ArrayReader",
    "FileReader",
    "FolderReader",
    "LiveStream",
    "StreamChunk",
    "VideoReadError",
    "VideoReader",
    "image_size",
    "list_frames",
    "natural_key",
    "open_stream",
    "open_video",
    "plot_scores",
    "read_video",
    "write_frames",
    "write_overlay",
    "write_video",
]

"""A synthetic surveillance scene with known anomalies, for demos and tests.

A fixed grey camera looks down on a textured pavement crossed by three horizontal walking lanes;
each lane has one walking direction (right, left, right, top to bottom). Walkers (small dark
figures with a swinging gait) enter at random times and cross at a normal speed of
0.7-1.3 px/frame; every frame adds sensor noise (sigma 2 grey levels). Training clips show only
that. Each test clip adds one anomalous object, entering from a lane's edge at a random onset
frame (between 10 % and 33 % of the clip):

- ``"appearance"``: a bright cart, 16 x 26 px (walkers are 14 x 7), at normal speed;
- ``"speed"``: a walker at 3.5-4.5 px/frame;
- ``"direction"``: a walker at normal speed going the wrong way along its lane.

Ground truth is exact: a frame is anomalous iff any pixel of the anomalous object is inside it,
and its mask is that object's pixels (drawn on top of everything). Everything is deterministic
in ``seed``; each clip has its own random stream, so changing ``n_test`` does not change the
training clips. The defaults (4 training and 6 test clips of 100 frames, 120 x 160) generate in
about half a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from vadx.data.base import Dataset, Masks, Video
from vadx.io.readers import ArrayReader

KINDS = ("appearance", "speed", "direction")
LANES = ((0.27, +1), (0.53, -1), (0.79, +1))  # (centre row as a fraction of the height, direction)
WALK_SPEED = (0.7, 1.3)
FAST_SPEED = (3.5, 4.5)
SPAWN_RATE = 1 / 30  # new walkers per lane per frame
NOISE_SIGMA = 2.0


@dataclass
class _Mover:
    x: float  # left edge, px
    top: int
    direction: int
    speed: float
    value: float  # body grey level
    sprite: str  # "walker" or "cart"

    def shape(self, travelled: float) -> tuple[np.ndarray, np.ndarray]:
        """(bool mask, grey values) of the sprite."""
        return _cart(self.value) if self.sprite == "cart" else _walker(self.value, int(travelled // 4) % 2)


@lru_cache(maxsize=2)
def _walker_mask(phase: int) -> np.ndarray:
    """A 14 x 7 figure: head, torso, legs together (phase 0) or apart (phase 1)."""
    m = np.zeros((14, 7), bool)
    yy, xx = np.mgrid[:14, :7]
    m |= (yy - 2) ** 2 + (xx - 3) ** 2 <= 4  # head
    m |= ((yy - 6.5) / 3.0) ** 2 + ((xx - 3) / 2.5) ** 2 <= 1  # torso
    legs = (2, 4) if phase == 0 else (1, 5)
    m[10:14, legs[0]] = m[10:14, legs[1]] = True
    m.flags.writeable = False
    return m


def _walker(value: float, phase: int) -> tuple[np.ndarray, np.ndarray]:
    v = np.full((14, 7), value, np.float32)
    v[:4] = value + 35  # the face is lighter than the clothes
    return _walker_mask(phase), v


def _cart(value: float) -> tuple[np.ndarray, np.ndarray]:
    """A 16 x 26 box with a darker rim and two windows: a shape and size no walker has."""
    m = np.ones((16, 26), bool)
    v = np.full(m.shape, value, np.float32)
    v[[0, 1, -2, -1], :] = v[:, [0, 1, -2, -1]] = value - 60
    v[4:8, 4:11] = v[4:8, 15:22] = 60
    return m, v


def _paste(frame: np.ndarray, mask: np.ndarray | None, mover: _Mover, travelled: float) -> bool:
    """Draw ``mover`` into ``frame`` (and ``mask``), clipped to the frame; False if off-frame."""
    sprite, values = mover.shape(travelled)
    h, w = frame.shape
    top, left = mover.top, int(round(mover.x))
    y0, y1 = max(top, 0), min(top + sprite.shape[0], h)
    x0, x1 = max(left, 0), min(left + sprite.shape[1], w)
    if y0 >= y1 or x0 >= x1:
        return False
    sub = sprite[y0 - top:y1 - top, x0 - left:x1 - left]
    frame[y0:y1, x0:x1][sub] = values[y0 - top:y1 - top, x0 - left:x1 - left][sub]
    if mask is not None:
        mask[y0:y1, x0:x1] |= sub
    return True


def _ground(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Pavement: smooth light/dark patches, fine grain and the joints of square slabs."""
    coarse = cv2.resize(rng.normal(0, 1, (h // 10 + 2, w // 10 + 2)).astype(np.float32), (w, h),
                        interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.normal(0, 6, (h, w)).astype(np.float32), (3, 3), 0.8)
    ground = 130 + 12 * coarse + fine
    ground[::20, :] -= 14
    ground[:, ::20] -= 14
    return ground


class _Lane:
    def __init__(self, rng: np.random.Generator, h: int, w: int, centre: float, direction: int):
        self.rng, self.w, self.direction = rng, w, direction
        self.centre = int(round(centre * h)) - 7  # sprite top for a 14-px walker
        self.walkers: list[tuple[_Mover, float]] = []  # (walker, distance travelled)
        x = rng.uniform(-10, 10)
        while x < w:  # start in a steady state, not with an empty scene
            self.walkers.append((self._walker(x), 0.0))
            x += rng.uniform(25, 70)

    def _walker(self, x: float) -> _Mover:
        r = self.rng
        return _Mover(x, self.centre + int(r.integers(-3, 4)), self.direction,
                      float(r.uniform(*WALK_SPEED)), float(r.uniform(30, 80)), "walker")

    def step(self, frame: np.ndarray) -> None:
        entry = -7.0 if self.direction > 0 else float(self.w)  # just outside, walking in
        if self.rng.random() < SPAWN_RATE and all(abs(m.x - entry) > 14 for m, _ in self.walkers):
            self.walkers.append((self._walker(entry), 0.0))
        alive = []
        for m, d in self.walkers:
            if _paste(frame, None, m, d) or (m.x < 0) == (m.direction > 0):  # still arriving
                alive.append((m, d))
            m.x += m.direction * m.speed
        self.walkers = [(m, d + m.speed) for m, d in alive]


def _clip(rng: np.random.Generator, ground: np.ndarray, n_frames: int, kind: str | None):
    h, w = ground.shape
    lanes = [_Lane(rng, h, w, c, d) for c, d in LANES]
    frames = np.empty((n_frames, h, w), np.uint8)
    masks = np.zeros((n_frames, h, w), bool)
    meta: dict = {"kind": kind or "normal"}
    anomaly, travelled = None, 0.0
    onset = int(rng.integers(n_frames // 10, n_frames // 3 + 1)) if kind else None
    if kind:
        k = int(rng.integers(len(LANES)))
        lane = lanes[k]
        direction = -lane.direction if kind == "direction" else lane.direction
        speed = float(rng.uniform(*(FAST_SPEED if kind == "speed" else WALK_SPEED)))
        sprite = "cart" if kind == "appearance" else "walker"
        width = 26 if sprite == "cart" else 7
        x = float(-width) if direction > 0 else float(w)
        top = lane.centre - (1 if sprite == "cart" else 0)
        value = float(rng.uniform(205, 225)) if sprite == "cart" else float(rng.uniform(30, 80))
        anomaly = _Mover(x, top, direction, speed, value, sprite)
        meta.update(onset=onset, lane=k, direction=direction, speed=speed)
    for t in range(n_frames):
        frame = ground.copy()
        for lane in lanes:
            lane.step(frame)
        if anomaly is not None and t >= onset:
            _paste(frame, masks[t], anomaly, travelled)
            anomaly.x += anomaly.direction * anomaly.speed
            travelled += anomaly.speed
        frame += rng.normal(0, NOISE_SIGMA, frame.shape).astype(np.float32)  # sensor noise on all
        frames[t] = np.clip(frame.round(), 0, 255)
    labels = masks.reshape(n_frames, -1).any(1).astype(np.uint8)
    return frames, labels, masks, meta


def make_dataset(seed: int = 0, *, n_train: int = 4, n_test: int = 6, n_frames: int = 100,
                 height: int = 120, width: int = 160, kinds: tuple[str, ...] = KINDS,
                 chunk_size: int = 64) -> Dataset:
    """Generate the synthetic scene's training and test clips (module docstring).

    Args:
        seed: the scene (pavement) and every clip derive from it.
        n_train: normal training clips.
        n_test: test clips; clip ``i`` has an anomaly of kind ``kinds[i % len(kinds)]``.
        n_frames: frames per clip (>= 20).
        height, width: frame size (>= 60 each); objects keep their pixel size.
        kinds: anomaly kinds to cycle through, from :data:`KINDS`.
        chunk_size: frames per chunk the readers yield.

    Returns:
        A :class:`Dataset` named ``"synthetic"``: grey ``[T, 1, H, W]`` frames; test videos with
        labels, masks and ``meta`` (``kind``, ``onset``, ``lane``, ``direction``, ``speed``).
    """
    for arg, value, low in (("n_train", n_train, 1), ("n_test", n_test, 1), ("n_frames", n_frames, 20),
                            ("height", height, 60), ("width", width, 60)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"{arg} must be an int >= {low}, got {value!r}")
    kinds = tuple(kinds)
    if not kinds or any(k not in KINDS for k in kinds):
        raise ValueError(f"kinds must be a non-empty selection of {KINDS}, got {kinds!r}")
    ground = _ground(np.random.default_rng([seed, 0, 0]), height, width)
    train, test = [], []
    for i in range(n_train):
        frames, _, _, meta = _clip(np.random.default_rng([seed, 1, i]), ground, n_frames, None)
        train.append(Video(f"train{i + 1:02d}", ArrayReader(frames, chunk_size=chunk_size), meta=meta))
    for i in range(n_test):
        kind = kinds[i % len(kinds)]
        frames, labels, masks, meta = _clip(np.random.default_rng([seed, 2, i]), ground, n_frames, kind)
        test.append(Video(f"test{i + 1:02d}_{kind}", ArrayReader(frames, chunk_size=chunk_size), labels,
                          Masks(masks, chunk_size=chunk_size), meta=meta))
    options = dict(seed=seed, n_train=n_train, n_test=n_test, n_frames=n_frames, height=height,
                   width=width, kinds=list(kinds), chunk_size=chunk_size)
    return Dataset("synthetic", train, test, None, "generated", options)

"""Generated test data and plugin distributions."""

from pathlib import Path

import torch


def make_dist(root: Path, dist: str, version: str, entry_points: dict, files: dict) -> Path:
    """A minimal installed distribution (dist-info + modules) in ``root``, as pip would leave it."""
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[vadx]\n{lines}")
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def make_video(T=40, H=24, W=32, fast=(), seed=0):
    """uint8 [T, 1, H, W]: a fixed textured background with a 3x3 square walking 1 px per frame;
    in the frames listed in ``fast`` a bright 6x6 square jumps 8 px per frame (the anomaly)."""
    g = torch.Generator().manual_seed(seed)
    bg = (torch.rand(H, W, generator=g) * 60 + 60).round()
    frames = bg.repeat(T, 1, 1)
    for t in range(T):
        x = t % (W - 3)
        frames[t, 10:13, x:x + 3] = 200
        if t in fast:
            y, x = (8 * t) % (H - 6), (8 * t) % (W - 6)
            frames[t, y:y + 6, x:x + 6] = 255
    return frames.to(torch.uint8).unsqueeze(1)

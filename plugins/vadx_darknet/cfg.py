"""Darknet ``.cfg`` files: sections of ``key=value`` text."""

from __future__ import annotations

import os
import re
from pathlib import Path


def parse_cfg(path: str | os.PathLike) -> list[dict[str, str]]:
    """A Darknet .cfg as a list of sections ``{"type": ..., key: value}`` (values as text)."""
    sections: list[dict[str, str]] = []
    for lineno, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ValueError(f"{os.fspath(path)}:{lineno}: malformed section header {raw!r}")
            sections.append({"type": line[1:-1].strip()})
        elif "=" in line and sections:
            key, value = line.split("=", 1)
            sections[-1][key.strip()] = value.strip()
        else:
            raise ValueError(f"{os.fspath(path)}:{lineno}: expected '[section]' or 'key=value', got {raw!r}")
    if not sections or sections[0]["type"] not in ("net", "network"):
        raise ValueError(f"{os.fspath(path)}: a Darknet cfg starts with a [net] section")
    return sections


def parse_ints(text: str) -> list[int]:
    """A cfg value that lists integers (``layers=-1, 8``, ``mask=3,4,5``)."""
    return [int(v) for v in re.split(r"\s*,\s*", text.strip()) if v]

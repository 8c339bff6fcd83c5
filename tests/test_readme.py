"""The README's promises: the CI script runs its test command verbatim, and the plugin guide is
the example plugin that tests/test_plugins.py installs, line for line."""

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def _code_blocks():
    return re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    commands = [b.strip() for b in _code_blocks() if b.strip().endswith("&& pytest")]
    assert len(commands) == 1
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[0] in ci, ".ci/run must run the README's test command verbatim"


def test_plugin_guide_is_the_fixture_line_for_line():
    blocks = _code_blocks()
    for name in ("pyproject.toml", "vadx_frame_diff.py", "tests/test_frame_diff.py"):
        text = (ROOT / "tests" / "fixtures" / "vadx-frame-diff" / name).read_text()
        assert text in blocks, f"README's {name} differs from tests/fixtures/vadx-frame-diff/{name}"

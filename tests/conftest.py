import pytest
import torch

# the example plugin's own tests run from test_testing.py, with the plugin importable
collect_ignore_glob = ["fixtures/*"]

_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests, restored afterwards: detectors' small per-frame
    networks run faster on one thread than on two busy cores (the shared 2-core CI machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=_cuda)])
def device(request):
    """Runs a test once per backend; CUDA runs where a GPU is present (the device machine)."""
    return request.param


import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import vadx.plugins  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[2] / "shared"  # ../shared beside the checkout: data, weights


@pytest.fixture(scope="session")
def example_plugin_site(tmp_path_factory):
    """The example plugin distribution of tests/fixtures, pip-installed into a private folder
    (offline, no build isolation): discovery then goes through its real entry point."""
    root = tmp_path_factory.mktemp("example_plugin")
    src = root / "src"
    shutil.copytree(FIXTURES / "vadx-frame-diff", src)  # builds write into the source tree
    site = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(site), str(src)],
        check=True,
    )
    return site


@pytest.fixture
def plugin_env(monkeypatch):
    """Put plugin folders on sys.path and reload the host; undone after the test.

    vadx's own first-party plugins are disabled (by distribution name), so a test sees exactly
    the plugins it adds."""
    monkeypatch.delenv("VADX_LOAD_PLUGINS", raising=False)
    monkeypatch.setenv("VADX_DISABLE_PLUGINS", "vadx")
    added: list[str] = []

    def add(*paths):
        for p in paths:
            monkeypatch.syspath_prepend(str(p))
            added.append(str(Path(p).resolve()))
        vadx.plugins.reload()

    yield add
    monkeypatch.undo()
    # Forget only the plugin modules imported from these folders (re-importing other extension
    # modules, e.g. matplotlib's, is not safe), so the next test imports its own copies.
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None) or ""
        if origin and any(str(Path(origin).resolve()).startswith(a) for a in added):
            del sys.modules[name]
    vadx.plugins.reload()

"""The compiled op library: OpenMP really on, and the import-time torch version check."""

import subprocess
import sys

import torch

import vadx
from vadx import _build_info, _C


def test_built_against_the_installed_torch():
    assert _C.torch_version == torch.__version__ == _build_info.torch_version
    assert _C.cuda == _build_info.cuda


def test_openmp_parallel_for_really_runs_in_parallel():
    assert _C.openmp
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert _C.parallel_for_threads_used(64) == 2
    finally:
        torch.set_num_threads(threads)


def _import_vadx_after(code):
    return subprocess.run([sys.executable, "-c", f"{code}\nimport vadx"], capture_output=True, text=True)


def test_torch_version_mismatch_raises_with_versions_and_rebuild_command():
    r = _import_vadx_after("import torch; torch.__version__ = '9.9.9'")
    assert r.returncode != 0
    assert "ImportError: vadx's op library was built against torch " + torch.__version__ in r.stderr
    assert "9.9.9 is installed" in r.stderr and "pip install --no-build-isolation" in r.stderr


def test_missing_op_library_raises_with_rebuild_command():
    block = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'vadx._C': raise ImportError('simulated: no _C')\n"
        "sys.meta_path.insert(0, Block())"
    )
    r = _import_vadx_after(block)
    assert r.returncode != 0
    assert "vadx's compiled op library (vadx._C) could not be loaded: simulated: no _C" in r.stderr
    assert f"It was built against torch {torch.__version__}" in r.stderr
    assert "pip install --no-build-isolation" in r.stderr


def test_version_is_the_distribution_version():
    from importlib.metadata import version

    assert vadx.__version__ == version("vadx")

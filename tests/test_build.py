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


OPS = ("accumulator_score", "mahalanobis_cascade", "rollback_coverage", "sista", "sista_backward")


def test_schemas_name_the_module_that_registers_the_fake_kernels():
    for name in OPS:
        module, _ = torch._C._dispatch_pystub(f"vadx::{name}", "")
        assert module == "vadx.ops._fake", name
    # On a fake kernel's first use, torch checks that it was registered from the module its schema
    # names (a mismatch raises): run every one on meta tensors.
    def m(*shape, dtype=torch.float32):
        return torch.empty(shape, dtype=dtype, device="meta")

    vadx_ops = torch.ops.vadx
    s, x = vadx_ops.accumulator_score(m(2, 5), 0.5, 2.0, -7.0, 7.0, m(2, dtype=torch.float64), "paper")
    assert s.shape == (2, 5) and x.shape == (2,)
    d1, _, label = vadx_ops.mahalanobis_cascade(m(1, 2, 3, 4), m(2), m(2, 2), 1.0, 2.0, m(3, 2), m(3),
                                                m(3), m(3, 3), 1.0)
    assert d1.shape == (1, 3, 4) and label.dtype == torch.uint8
    assert vadx_ops.rollback_coverage(m(1, 2, 3), [3, 3], [2, 2], [1, 1], [4, 5]).shape == (1, 4, 5)
    codes, states = vadx_ops.sista(m(2, 3, 4), m(4, 5), None, m(), m(), m(), m(2, 3), m(2, 5), 2, "signed")
    assert codes.shape == (2, 3, 5) and states.shape == (3, 2, 2, 5)
    grads = vadx_ops.sista_backward(codes, m(2, 3, 4), m(4, 5), None, m(), m(), m(), m(2, 3), codes,
                                    states, "signed")
    assert [tuple(g.shape) for g in grads] == [(2, 3, 4), (4, 5), (5, 5), (), (), (), (2, 3), (2, 5)]


def test_fake_tensors_before_importing_vadx_say_which_module_to_import():
    """With the op library loaded but vadx not imported, fake/meta tensors get torch's 'import
    vadx.ops._fake' hint (the schemas' set_python_module), not a bare missing-kernel error."""
    code = (
        "import torch\n"
        f"torch.ops.load_library({_C.__file__!r})\n"
        "w = torch.rand(2, 3, 4)\n"
        "try:\n"
        "    torch.ops.vadx.rollback_coverage(w.to('meta'), [3, 3], [2, 2], [1, 1], [8, 8])\n"
        "except NotImplementedError as e:\n"
        "    print('meta:', e)\n"
        "f = lambda w: torch.ops.vadx.rollback_coverage(w, [3, 3], [2, 2], [1, 1], [8, 8])\n"
        "try:\n"
        "    torch.compile(f, fullgraph=True, backend='eager')(w)\n"
        "except Exception as e:\n"
        "    print('compile:', e)\n"
        "import vadx\n"
        "print('after import:', tuple(torch.compile(f, fullgraph=True, backend='eager')(w).shape))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "meta: vadx::rollback_coverage: We could not find the fake impl" in r.stdout
    assert "you may need to import the 'vadx.ops._fake' Python module" in r.stdout
    assert "you may need to `import vadx.ops._fake`" in r.stdout
    assert "`import vadx` imports it" in r.stdout
    assert "after import: (2, 8, 8)" in r.stdout

"""vadx's modules import each other without cycles, and the contract does not import the host.

Static: every ``.py`` file under vadx/ is parsed with ``ast`` and every import of a vadx module is
collected, at module level and inside functions (and under ``if TYPE_CHECKING``) alike, because a
cycle hidden inside a function is still a layering cycle. ``from P import X`` resolves to the
submodule ``P.X`` when X is a submodule or subpackage of package P, otherwise to P itself (its
``__init__``); ``import a.b.c`` and ``from a.b.c import X`` resolve to ``a.b.c``. Importing a
submodule is not counted as importing its parent packages (Python runs their ``__init__`` first,
but that is the package's business, not an edge the importing module chose).
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import vadx

PACKAGE = "vadx"
ROOT = Path(vadx.__file__).resolve().parent  # vadx/ (editable install: the source tree)


def _modules() -> dict[str, Path]:
    """Module name -> file, for every .py under vadx/ (a package is its __init__.py)."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_module(name: str) -> bool:
    """``name`` is a vadx module: a .py file here, or another (compiled) submodule, e.g. vadx._C."""
    if name in MODULES:
        return True
    parent = name.rpartition(".")[0]
    if parent in MODULES and MODULES[parent].name != "__init__.py":
        return False  # an attribute of a plain module
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _imports(module: str, path: Path) -> set[str]:
    """The vadx modules that ``module`` imports anywhere in its file."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: level 1 is this module's package
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                out.add(sub if alias.name != "*" and _is_module(sub) else source)
    return {m for m in out if m == PACKAGE or m.startswith(PACKAGE + ".")} - {module}


def _graph() -> dict[str, set[str]]:
    return {m: _imports(m, p) for m, p in MODULES.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search, white/grey/black)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def _reachable(graph: dict[str, set[str]], start: str) -> dict[str, str | None]:
    """Every module ``start`` imports directly or transitively -> the module it was reached from."""
    parent: dict[str, str | None] = {start: None}
    todo = [start]
    while todo:
        node = todo.pop()
        for nxt in sorted(graph.get(node, ())):
            if nxt not in parent:
                parent[nxt] = node
                todo.append(nxt)
    return parent


def _path(parent: dict[str, str | None], end: str) -> str:
    chain = [end]
    while parent[chain[-1]] is not None:
        chain.append(parent[chain[-1]])
    return " -> ".join(reversed(chain))


def test_the_checker_resolves_imports_and_finds_cycles():
    assert "vadx.detector" in MODULES and "vadx.ops" in MODULES and "vadx.io.readers" in MODULES
    graph = _graph()
    assert "vadx.ops.sista" in graph["vadx.ops"]  # a package's __init__ importing its submodule
    assert "vadx.hookspecs" in graph["vadx.plugins"]  # from vadx import hookspecs: the submodule
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles_between_vadx_modules():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle between vadx modules: " + " -> ".join(cycle)


def test_the_contracts_do_not_import_the_plugin_host_or_the_cli():
    graph = _graph()
    for contract in ("vadx.detector", "vadx.objects"):
        reached = _reachable(graph, contract)
        for host in ("vadx.plugins", "vadx.cli"):
            assert host not in reached, f"{contract} imports {host}: {_path(reached, host)}"
    # vadx.objects is torch only: implementations (vadx_darknet) and the host import it, not back
    assert graph["vadx.objects"] == set()


def test_only_the_progress_module_imports_tqdm():
    """Progress belongs to the host (vadx.progress): plugins and other modules ask it for bars,
    so one switch (``--quiet``, ``progress=False``) silences them all."""
    sources = [p for p in ROOT.rglob("*.py")] + list((ROOT.parent / "plugins").rglob("*.py"))
    offenders = []
    for path in sources:
        if path == ROOT / "progress.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == "tqdm" or n.startswith("tqdm.") for n in names):
                offenders.append(str(path.relative_to(ROOT.parent)))
    assert not offenders, f"these import tqdm instead of using vadx.progress: {sorted(set(offenders))}"


def test_bare_import_reaches_the_user_facing_subpackages():
    # a fresh interpreter: in this process pytest has imported them already
    code = ("import vadx\n"
            "assert callable(vadx.io.open_video) and callable(vadx.data.load)\n"
            "assert callable(vadx.metrics.roc_auc) and vadx.postprocess.PostProcess\n"
            "assert callable(vadx.features.load_backbone)\n"
            "assert {'io', 'data', 'metrics'} <= set(dir(vadx))\n"
            "try:\n    vadx.nope\nexcept AttributeError as e:\n    assert \"no attribute 'nope'\" in str(e)\n"
            "else:\n    raise SystemExit('vadx.nope did not raise')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

"""The package's modules import each other one way only: no cycles.

Reads the source (no imports run): every ``import``/``from ... import`` of a kerasbrain
module, at module level or inside a function, and every kerasbrain module named in a
string (``importlib.import_module`` tables), is an edge; importing ``a.b.c`` also runs
``a.b``'s ``__init__``. Lazy re-exports through a package's ``__getattr__`` (``kerasbrain.data``'s
names, ``kerasbrain``'s submodules) resolve on first use and are not edges.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "kerasbrain"

pytestmark = pytest.mark.backend_independent


def _modules():
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _resolve(name, modules):
    """The module ``name`` refers to (a name inside a module resolves to the module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def _edges(name, path, modules):
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    lazy = set()
    for node in tree.body:  # a package's __getattr__ is its lazy facade
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            lazy.update(id(n) for n in ast.walk(node))
    targets = set()
    for node in ast.walk(tree):
        if id(node) in lazy:
            continue
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
            targets.add(base)
        elif isinstance(node, ast.Constant) and node.value in modules:
            targets.add(node.value)  # a module named in a string is imported by name
    edges = set()
    for target in targets:
        if target.split(".")[0] != "kerasbrain":
            continue
        module = _resolve(target, modules)
        while module:  # importing a.b.c runs a, a.b and a.b.c
            edges.add(module)
            module = module.rpartition(".")[0]
    edges.discard(name)
    # a module's own parents run before it: no edge back to them
    return {e for e in edges if not name.startswith(e + ".")}


def import_graph():
    modules = _modules()
    return {name: _edges(name, path, modules) for name, path in modules.items()}


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_detection_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_graph_sees_function_level_and_string_imports(tmp_path):
    modules = {"kerasbrain": tmp_path / "__init__.py", "kerasbrain.x": tmp_path / "x.py",
               "kerasbrain.y": tmp_path / "y.py", "kerasbrain.y.z": tmp_path / "z.py"}
    source = ("import importlib\n"
              "def f():\n    from kerasbrain.y import z\n"
              "def g():\n    importlib.import_module('kerasbrain.y')\n")
    (tmp_path / "x.py").write_text(source)
    assert _edges("kerasbrain.x", tmp_path / "x.py", modules) == {"kerasbrain.y", "kerasbrain.y.z"}


def test_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 50 and "kerasbrain.applications.sfcn" in graph
    found = cycles(graph)
    assert not found, "import cycles between kerasbrain modules:\n" + "\n".join(
        " <-> ".join(c) for c in found)

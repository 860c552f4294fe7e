"""The package's layers (docs/architecture.md): every import, at module level or inside a
function, goes to the same layer or one below, and no two modules import each other, directly
or through others."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "paramops")

# the layers, bottom first; a module is in the first layer whose prefix it matches
LAYERS = [
    ("core", ["paramops.core"]),
    ("spec", ["paramops.spec"]),
    ("backends", ["paramops.backends"]),
    ("registration", ["paramops.registration"]),
    ("ops", ["paramops.ops", "paramops.tied"]),
    ("init and patching", ["paramops.init", "paramops.patching"]),
    ("fused and model", ["paramops.capture", "paramops.model", "paramops.tying"]),
    ("package", ["paramops"]),  # paramops/__init__.py: the public names
    ("bench and cli", ["paramops.bench", "paramops.__main__"]),  # on the public API
]
EXTENSION = "paramops._C"  # the compiled extension: core (loaded by paramops.core.ext)


def _layer(mod):
    if mod == EXTENSION:
        return 0
    for i, (_, prefixes) in enumerate(LAYERS):
        if mod == "paramops" and prefixes == ["paramops"]:
            return i
        if mod != "paramops" and prefixes == ["paramops"]:
            continue
        if any(mod == p or mod.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{mod} is in no layer")


def _modules():
    out = {}
    for dirpath, _, files in os.walk(PKG):
        for fn in files:
            if fn.endswith(".py"):
                path = os.path.join(dirpath, fn)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return out


def _imports(mod, path):
    """The paramops modules `mod` imports (anywhere in its file)."""
    pkg = mod if path.endswith("__init__.py") else mod.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("paramops"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            if not base.startswith("paramops"):
                continue
            for a in node.names:  # `from . import x` imports the module x when there is one
                found.add(f"{base}.{a.name}")
    return found


def _graph():
    mods = _modules()
    graph = {}
    for mod, path in mods.items():
        deps = set()
        for imp in _imports(mod, path):
            while imp not in mods and imp != EXTENSION and "." in imp:  # an attribute of a module: the module
                imp = imp.rsplit(".", 1)[0]
            if imp == EXTENSION:
                deps.add(imp)
                continue
            if imp in mods and imp != mod:
                deps.add(imp)
        graph[mod] = deps
    return graph


def test_every_module_has_a_layer():
    for mod in _graph():
        _layer(mod)
    assert len(_graph()) > 25


def test_imports_go_down():
    bad = []
    for mod, deps in _graph().items():
        for d in deps:
            if _layer(d) > _layer(mod):
                bad.append((mod, LAYERS[_layer(mod)][0], d, LAYERS[_layer(d)][0]))
    assert not bad, bad


def test_no_import_cycles():
    graph = _graph()
    state = {}

    def visit(m, path):
        state[m] = "open"
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                pytest.fail("import cycle: " + " -> ".join(path + [m, d]))
            if d not in state and d in graph:
                visit(d, path + [m])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert len(state) == len(graph)


def test_the_lower_layers_know_nothing_of_the_upper():
    """core imports only core; spec only core and spec; the writers nothing above backends."""
    graph = _graph()
    assert all(_layer(d) == 0 for m, deps in graph.items() if _layer(m) == 0 for d in deps)
    assert all(_layer(d) <= 1 for m, deps in graph.items() if _layer(m) == 1 for d in deps)
    assert "paramops.core.ext" in graph["paramops.core.seeds"]
    assert "paramops.spec.reference" in graph["paramops.spec.checks"]

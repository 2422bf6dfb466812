"""The package's layout rules (issue 12): no product module over 400 lines, and the file formats
reached through `mocoinfer.formats` only.

Oracles: `wc -l` for a module's length (the number of newline bytes, counted here the same way
and checked against `wc -l` itself on one file), and the imports as `ast` reads them. That no
product module imports from tests/ is checked in test_acl_backend.py
(`test_stand_in_is_not_importable_by_the_product`).
"""

from __future__ import annotations

import ast
import glob
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_LINES = 400
MODULES = sorted(glob.glob(os.path.join(ROOT, "mocoinfer", "**", "*.py"), recursive=True))
FORMATS_DIR = os.path.join(ROOT, "mocoinfer", "formats")


def line_count(path: str) -> int:
    """What `wc -l` prints: the number of newline bytes."""
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def test_the_modules_were_found():
    names = {os.path.relpath(p, ROOT) for p in MODULES}
    assert {"mocoinfer/atomic.py", "mocoinfer/formats/__init__.py", "mocoinfer/backends/acl.py"} <= names


@pytest.mark.skipif(shutil.which("wc") is None, reason="no wc on this machine")
def test_line_count_is_what_wc_prints():
    path = os.path.join(ROOT, "mocoinfer", "atomic.py")
    out = subprocess.run(["wc", "-l", path], check=True, capture_output=True, text=True).stdout
    assert line_count(path) == int(out.split()[0])


@pytest.mark.parametrize("path", MODULES, ids=lambda p: os.path.relpath(p, ROOT))
def test_module_is_at_most_400_lines(path):
    assert line_count(path) <= MAX_LINES


def _formats_imports(path: str, package: str):
    """(line, module) of every import of a `mocoinfer.formats` submodule in `path`, a module of
    `package` (for relative imports)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # resolve `from .formats import x` / `from ..formats.results import y`
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            # `from mocoinfer.formats import results` names a submodule too.
            mods = [base] + [f"{base}.{a.name}" for a in node.names if base == "mocoinfer.formats"]
        else:
            continue
        for m in mods:
            if m.startswith("mocoinfer.formats.") and m.split(".")[2] in _SUBMODULES:
                yield node.lineno, m


_SUBMODULES = {os.path.splitext(n)[0] for n in os.listdir(FORMATS_DIR) if n.endswith(".py")} - {"__init__"}


def test_formats_are_imported_from_the_package_only():
    """Code outside mocoinfer/formats/ imports `mocoinfer.formats`, never one of its submodules,
    so the formats stay one interface however the package is cut."""
    sources = glob.glob(os.path.join(ROOT, "*.py")) + [
        p for d in ("mocoinfer", "tests", "benchmarks")
        for p in glob.glob(os.path.join(ROOT, d, "**", "*.py"), recursive=True)]
    offenders = [f"{os.path.relpath(p, ROOT)}:{line}: imports {m}"
                 for p in sources if not p.startswith(FORMATS_DIR + os.sep)
                 for line, m in _formats_imports(p, os.path.dirname(os.path.relpath(p, ROOT)).replace(os.sep, "."))]
    assert len(sources) > len(MODULES) and offenders == []


def test_the_submodule_check_bites(tmp_path):
    """The check above finds a submodule import: absolute, relative, and `from mocoinfer.formats import info`."""
    path = tmp_path / "probe.py"
    path.write_text("from .formats.results import read_result\nimport mocoinfer.formats.perffile\n"
                    "from mocoinfer.formats import info, read_info\nfrom .formats import read_labels\n"
                    "from ..formats.bins import bin_name\n", encoding="utf-8")
    found = [m for _, m in _formats_imports(str(path), "mocoinfer")]
    assert found == ["mocoinfer.formats.results", "mocoinfer.formats.perffile", "mocoinfer.formats.info"]
    # From a subpackage (mocoinfer/backends/), `..formats.bins` is a submodule import as well.
    assert [m for _, m in _formats_imports(str(path), "mocoinfer.backends")][-1] == "mocoinfer.formats.bins"


# The one-run rules (issue 18), measured from the package's own imports.

PACKAGE = os.path.join(ROOT, "mocoinfer")
BACKEND_NAMES = {"acl", "aisbench", "onnxruntime", "torch"}


def _module_name(path: str) -> str:
    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def _imports(path: str):
    """(line, imported module, [names]) for every import in `path`, relative ones resolved; an
    import of `mocoinfer.x` names module `mocoinfer.x` (a submodule imported by name counts as
    one too: `from . import atomic`)."""
    module = _module_name(path)
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            yield node.lineno, base, [a.name for a in node.names]


def _package_graph():
    modules = {_module_name(p): p for p in MODULES}
    graph = {m: set() for m in modules}
    for m, path in modules.items():
        for _, base, names in _imports(path):
            targets = [base] + [f"{base}.{n}" for n in names]
            for t in targets:
                if t in modules and t != m:
                    graph[m].add(t)
    # A package's __init__ runs on importing any of its submodules: an edge to a submodule is an
    # edge to its package's __init__ too.
    for m in list(graph):
        for t in list(graph[m]):
            parent = t.rsplit(".", 1)[0]
            if parent in modules and parent != m and not m.startswith(parent + "."):
                graph[m].add(parent)
    return graph


def _cycles(graph):
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_in_the_package():
    """Oracle: Tarjan's strongly connected components over every import in mocoinfer/, at the top
    of a module or inside a function alike; a circle is a component of two or more modules."""
    graph = _package_graph()
    assert "mocoinfer.onepass" in graph["mocoinfer.runner"]  # the graph sees the imports
    assert _cycles(graph) == []


def test_the_circle_check_bites():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_private_name_imported_across_modules():
    """Oracle: every `from X import _name` in mocoinfer/, the entry scripts and benchmarks where X
    is a module of the package (a leading underscore is that module's own)."""
    sources = glob.glob(os.path.join(ROOT, "*.py")) + MODULES + glob.glob(os.path.join(ROOT, "benchmarks", "*.py"))
    modules = {_module_name(p) for p in MODULES}
    offenders = [f"{os.path.relpath(p, ROOT)}:{line}: {base}.{n}"
                 for p in sources for line, base, names in _imports(p)
                 if base in modules for n in names if n.startswith("_") and not n.startswith("__")]
    assert offenders == []


def _backend_name_tests(path: str):
    """(line, text) of each comparison against a backend's name: `x == "acl"`, `x in ("torch", ...)`,
    and a dict or tuple of backend names given to a comparison or a lookup by name."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)

    def names_in(node) -> bool:
        if isinstance(node, ast.Constant) and node.value in BACKEND_NAMES:
            return True
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(isinstance(e, ast.Constant) and e.value in BACKEND_NAMES for e in node.elts)
        if isinstance(node, ast.Dict):
            return any(isinstance(k, ast.Constant) and k.value in BACKEND_NAMES for k in node.keys)
        return False

    found = []
    for node in ast.walk(tree):
        compared = isinstance(node, ast.Compare) and any(names_in(n) for n in [node.left] + node.comparators)
        if compared or (isinstance(node, ast.Assign) and names_in(node.value)):
            found.append((node.lineno, ast.unparse(node)))
    return sorted(found)


def test_no_backend_name_tested_outside_backends():
    """Oracle: the comparisons against "acl", "aisbench", "onnxruntime" or "torch" (and tables keyed by them)
    that `ast` finds in mocoinfer/ outside mocoinfer/backends/: a backend says what it is through
    its attributes (`compute_label`, `computes_on_host`, `summary_extras`, `extensions`)."""
    backends = os.path.join(PACKAGE, "backends") + os.sep
    offenders = [f"{os.path.relpath(p, ROOT)}:{line}: {text}" for p in MODULES if not p.startswith(backends)
                 for line, text in _backend_name_tests(p)]
    assert offenders == []


def test_the_backend_name_check_bites(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text('if be.name == "onnxruntime":\n    pass\nORDER = {"acl": 0}\nok = name in ("zeros", "x")\n')
    assert [line for line, _ in _backend_name_tests(str(path))] == [1, 3]


def test_a_new_backend_is_one_module_and_one_line():
    """What a runtime is lives in its class: the registry in backends/__init__.py is the one line
    a new backend adds (oracle: each registered class module defines the class it names)."""
    from mocoinfer import backends

    for name in backends.BACKENDS:
        cls = backends.choose_backend("model", name)
        assert cls.name == name and cls.extensions and cls.__module__ == f"mocoinfer.backends.{name}"


def test_module_names_are_distinct():
    """Oracle: the file names of mocoinfer/'s modules (one `perf.py`, not one per package)."""
    names = [os.path.basename(p) for p in MODULES if not p.endswith("__init__.py")]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []

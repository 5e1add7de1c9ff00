"""Every module of the product imports on its own.

A module that imports only when another was imported first hides an import cycle, or leans on a submodule
someone else happened to import: the CLI would work, and a new entry point, a tool or a test importing that
module alone would fail. Importing each module in a process of its own proves it, but costs one import of
the registry's schemas (pydantic builds their validators) per module: 45 s of CPU for 150 modules.

The same guarantee, read from the source instead, costs well under a second; every module is then imported
for real once (an import that raises is caught there). Each module imports alone when
- the module-level imports between our modules form no cycle (imports inside functions run later and are left
  out; a package's `__init__` importing its own submodules is no cycle unless one of them imports it back);
- no module reaches a submodule of ours through an attribute (`web.controllers.guard.X` after only
  `import web.controllers`) without importing it itself.
"""

import ast
import importlib
import sys
import traceback
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("kernel", "ledger", "guard", "registry", "web", "cli")


def module_files() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":  # running it starts the CLI; importing it alone is not its use
                continue
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


@cache
def parsed() -> dict[str, ast.Module]:
    return {name: ast.parse(path.read_text(), str(path)) for name, path in module_files().items()}


def _top_level(tree: ast.Module) -> Iterator[ast.stmt]:
    """The statements that run when the module is imported: not function bodies, not `if TYPE_CHECKING:`."""
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        if isinstance(node, ast.If | ast.Try | ast.With):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    stack.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])
        elif isinstance(node, ast.ClassDef):
            stack.extend(node.body)


def _ours(name: str, modules: dict[str, Path]) -> str | None:
    """The module of ours that importing `name` loads last (a name imported from a module is that module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_at_load(module: str, tree: ast.Module, modules: dict[str, Path]) -> set[str]:
    found = set()
    for node in _top_level(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for target in targets:
            ours = _ours(target, modules)
            if ours is not None and ours != module:
                found.add(ours)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each a cycle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def submodules_reached_by_attribute(module: str, tree: ast.Module, modules: dict[str, Path]) -> set[str]:
    """Our submodules this module uses as `a.b.c` attributes without importing them anywhere in it."""
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    # Importing a.b.c imports a and a.b too.
    imported |= {name.rsplit(".", depth)[0] for name in list(imported) for depth in range(1, name.count(".") + 1)}
    reached = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            dotted = ast.unparse(node)
            if dotted in modules and dotted not in imported and dotted != module:
                reached.add(dotted)
    return reached


def test_the_imports_between_our_modules_form_no_cycle_at_load_time() -> None:
    modules = module_files()
    assert "guard.policy" in modules and "cli.main" in modules
    graph = {name: imports_at_load(name, tree, modules) for name, tree in parsed().items()}
    assert cycles(graph) == []


def test_no_module_reaches_a_submodule_it_does_not_import_itself() -> None:
    modules = module_files()
    reached = {
        name: sorted(found)
        for name, tree in parsed().items()
        if (found := submodules_reached_by_attribute(name, tree, modules))
    }
    assert reached == {}


def test_a_cycle_of_imports_is_found() -> None:
    # The checks above can fail: a two-module cycle, and a module importing itself through its package.
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    modules = {"p": Path("p/__init__.py"), "p.q": Path("p/q.py")}
    tree = ast.parse("import p\nx = p.q.thing\n")
    assert submodules_reached_by_attribute("m", tree, modules) == {"p.q"}
    assert imports_at_load("p.q", ast.parse("def f():\n    import p\n"), modules) == set()  # at call time only
    assert imports_at_load("p.q", ast.parse("from p import thing\n"), modules) == {"p"}


def test_every_module_of_the_product_imports() -> None:
    # In this process: with the two checks above, the order of imports cannot matter, and the suite imports
    # nearly all of them anyway; an import that raises (a typo in a module no test reaches) fails here.
    failures = {}
    for name in sorted(module_files()):
        try:
            importlib.import_module(name)
        except Exception:
            failures[name] = traceback.format_exc()[-4000:]
    assert failures == {}


def test_no_circle_of_imports_even_through_imports_inside_functions_or_for_types() -> None:
    # Stricter than load time: the whole import graph (grimp, as import-linter draws it) has no circle at all.
    import grimp

    graph = grimp.build_graph(*PACKAGES)
    ours = {
        module: {i for i in graph.find_modules_directly_imported_by(module) if i.split(".")[0] in PACKAGES}
        for module in graph.modules
    }
    assert cycles(ours) == []

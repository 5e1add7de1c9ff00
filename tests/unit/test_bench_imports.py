"""The benchmarks in bench/ still find what they import from the product.

The benchmarks run by hand, not in the suite, so a module moving house (issue 26 moved `ART28_CLAUSES` from
`guard.policy` to `guard.vocabulary`) broke every script that imported it, and nothing said so until someone
sat down to measure. Each `from <our module> import <name>` in bench/ is read from the source and resolved here.
"""

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("kernel", "ledger", "guard", "registry", "web", "cli")


def product_imports() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted((ROOT / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                found.extend((path.name, node.module, alias.name) for alias in node.names)
            elif isinstance(node, ast.Import):
                found.extend(
                    (path.name, alias.name, "") for alias in node.names if alias.name.split(".")[0] in PACKAGES
                )
    return found


def test_the_benchmarks_import_something_from_the_product() -> None:
    assert len({script for script, _, _ in product_imports()}) >= 5


@pytest.mark.parametrize(("script", "module", "name"), product_imports())
def test_every_name_a_benchmark_imports_from_the_product_exists(script: str, module: str, name: str) -> None:
    imported = importlib.import_module(module)
    if name:
        assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}") is not None, (
            f"bench/{script} imports {name} from {module}, which has no such name"
        )

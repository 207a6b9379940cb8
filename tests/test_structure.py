"""The shape of the code, read from the code: cnnlab's modules import each other without cycles and at
their top, cnnlab never imports Streamlit, and code asks the registry rather than naming architectures."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "cnnlab"
APP_CODE = [ROOT / "streamlit_app.py", *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "app").glob("*.py"))]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(path: Path, name: str | None = None) -> list[tuple[str, int, bool]]:
    """Every cnnlab module `path` (module `name`) imports: (module, line, inside a function). Imports
    only for type checkers (`if TYPE_CHECKING:`) are left out: they never run."""
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def visit(node, in_function):
        if _type_checking(node):
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            in_function = True
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno, in_function) for alias in node.names
                         if alias.name.split(".")[0] == "cnnlab")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if base.split(".")[0] == "cnnlab":
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    found.append((target if target in MODULES else base, node.lineno, in_function))
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(ast.parse(path.read_text()), False)
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the modules importing it runs. Importing a submodule first runs its packages' __init__
    (all but cnnlab's own facade, which every module would otherwise depend on), unless the importer
    is inside that package already."""
    edges = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for target, _, _ in imports(path):
            parts = target.split(".")
            for depth in range(2, len(parts)):
                parent = ".".join(parts[:depth])
                if parent in MODULES and not name.startswith(parent + ".") and name != parent:
                    edges[name].add(parent)
            if target != name and target != "cnnlab":
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def walk(node, trail):
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                found.append(trail[trail.index(target):] + [target])
            elif target not in state:
                walk(target, trail + [target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            walk(node, [node])
    return found


def test_cnnlab_has_no_import_cycles():
    assert cycles(graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_cnnlab_imports_its_own_modules_at_the_top():
    inside = [f"{path.relative_to(ROOT)}:{line} imports {target}" for path in MODULES.values()
              for target, line, in_function in imports(path) if in_function]
    assert inside == [], "an import inside a function hides a dependency (or a cycle): " + "; ".join(inside)


def test_the_import_reader_sees_relative_type_checking_and_function_level_imports(tmp_path):
    source = tmp_path / "fake.py"
    source.write_text("from typing import TYPE_CHECKING\nfrom . import data\nfrom .architectures import config\n"
                      "if TYPE_CHECKING:\n    from .runs import Run\n\ndef f():\n    from .errors import LabError\n")
    assert imports(source, "cnnlab.fake") == [("cnnlab.data", 2, False), ("cnnlab.architectures.config", 3, False),
                                              ("cnnlab.errors", 8, True)]
    nested = tmp_path / "nested.py"
    nested.write_text("from .. import checks\nfrom .registry import Knob\n")
    assert imports(nested, "cnnlab.architectures.nested") == [("cnnlab.checks", 1, False),
                                                               ("cnnlab.architectures.registry", 2, False)]


def test_cnnlab_never_imports_streamlit():
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(n.split(".")[0] == "streamlit" for n in names), path


def test_each_layer_imports_only_the_layers_below_it():
    """cnnlab knows nothing of the app; the app package knows nothing of the pages."""
    for path in MODULES.values():
        tops = {alias.name.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Import) for alias in node.names}
        tops |= {(node.module or "").split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.ImportFrom) and not node.level}
        assert not tops & {"app", "pages", "streamlit_app"}, path
    for path in sorted((ROOT / "app").glob("*.py")):
        assert "pages" not in {(node.module or "").split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                               if isinstance(node, ast.ImportFrom)}, path


# Architecture names written out in the app's code or in cnnlab outside the registry and its builders:
# only data, each named here. Everything else asks the registry.
NAMED_ON_PURPOSE = {"app/widgets.py": {"lenet5"},  # QUICK_RUN: the run "get one in one click" starts
                    "cnnlab/lessons.py": {"lenet5", "alexnet", "vgg19", "transfer"}}  # the lessons' registry


def test_code_asks_the_registry_instead_of_naming_architectures():
    import cnnlab

    names = set(cnnlab.list_architectures())
    builders = PACKAGE / "architectures"
    named = {}
    for path in [p for p in MODULES.values() if p.parent != builders] + APP_CODE:
        found = {node.value for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names}
        if found:
            named[str(path.relative_to(ROOT))] = found
    assert named == NAMED_ON_PURPOSE


@pytest.mark.parametrize("path", [p for p in APP_CODE if p.parent.name == "pages"] + [ROOT / "streamlit_app.py"],
                         ids=lambda p: p.name)
def test_every_page_is_a_short_script(path):
    assert len(path.read_text().splitlines()) <= 100, f"{path.name}: put its parts in the app package"

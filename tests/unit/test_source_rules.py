"""Two rules of the source, read with `ast`: production code states invariants with ledger.errors.invariant() and
present(), never `assert` (which `python -O` removes); an import names only what the module exports in `__all__`.

Tests may import a module's private helpers (`_rows`) to test them directly; a public name they import must be
exported like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ledger", "payments", "dunning", "desk")


def _modules(*roots: str) -> dict[str, tuple[str, ast.Module]]:
    """Module name -> (path, tree) of every .py file under `roots`."""
    out = {}
    for root in roots:
        for path in sorted((ROOT / root).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = (str(path.relative_to(ROOT)), ast.parse(path.read_text(encoding="utf-8")))
    return out


def _exports(tree: ast.Module) -> set[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return None


def asserts(modules: dict[str, tuple[str, ast.Module]]) -> list[str]:
    return [
        f"{path}:{node.lineno}: {ast.unparse(node)}"
        for path, tree in modules.values()
        for node in ast.walk(tree)
        if isinstance(node, ast.Assert)
    ]


def bypasses(production: dict[str, tuple[str, ast.Module]], importers: dict[str, tuple[str, ast.Module]]) -> list[str]:
    """`from m import name` where m is a project module with an `__all__` that lacks `name`."""
    exports = {name: _exports(tree) for name, (_, tree) in production.items()}
    wrong = []
    for importer, (path, tree) in importers.items():
        test = importer.startswith("tests")
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.level or node.module not in production:
                continue
            exported = exports[node.module]
            for alias in node.names:
                if exported is None or alias.name in exported or f"{node.module}.{alias.name}" in production:
                    continue
                if test and alias.name.startswith("_"):
                    continue
                wrong.append(f"{path}:{node.lineno}: from {node.module} import {alias.name}")
    return wrong


def test_production_code_has_no_assert_statements() -> None:
    assert asserts(_modules(*PACKAGES)) == [], "use ledger.errors.invariant(condition, why) or present(value, why)"


def test_imports_name_only_exported_names() -> None:
    production = _modules(*PACKAGES)
    assert bypasses(production, {**production, **_modules("tests")}) == []


def test_the_rules_find_what_they_look_for() -> None:
    production = _modules(*PACKAGES)
    planted = {
        "desk.planted": (
            "desk/planted.py",
            ast.parse("from ledger.rotation import ColumnRotation, _private\nassert True\n"),
        ),
        "tests.planted": ("tests/planted.py", ast.parse("from ledger.glexport import _helper, GLFile, nothing\n")),
    }
    assert asserts(planted) == ["desk/planted.py:2: assert True"]
    assert bypasses(production, planted) == [
        "desk/planted.py:1: from ledger.rotation import _private",
        "tests/planted.py:1: from ledger.glexport import nothing",
    ]

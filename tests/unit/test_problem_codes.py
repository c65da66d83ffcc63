"""Every problem code the source raises is in ledger.problem_codes with the status it is raised with, and every
catalogued code is raised somewhere; the README's table is the one the catalogue generates.

The source is read with `ast`, not imported. A call site is a call of a KontorError subclass (its `status`) or of
`ledger.http.problems.problem(status=..., code=...)`; the code argument is a string literal, an f-string (a
family: `amazon_pay_<reason_code>`), a name bound in the function to either (also through a `for` over literal
pairs, a helper's return value, a `dict.get` default), or a parameter of an enclosing function, whose callers'
arguments (in its module, else in the modules that import it) then count, with the status the inner call
states. Dict displays mapping HTTP statuses to codes (`{404: "not_found"}`) count as call sites too. `exc.code` (passing a raised error on) is the one expression
that names no code.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger import problem_codes
from ledger.problem_codes import CATALOGUE, CODES, FAMILIES, README_END, README_START

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ledger", "payments", "dunning", "desk")
CODE_SHAPE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$|^[a-z]+$")


@dataclass(frozen=True)
class Use:
    code: str  # a code, or a family's prefix followed by "<"
    status: int | None  # None: stated by a variable
    where: str


class Scan:
    """The problem codes used in the modules' source, with their statuses."""

    def __init__(self, files: dict[str, str]) -> None:
        self.trees = {name: ast.parse(text) for name, text in files.items()}
        self.sinks = self._error_classes()
        self.uses: list[Use] = []
        self.unresolved: list[str] = []
        for name, tree in self.trees.items():
            self._scan(name, tree)

    def _error_classes(self) -> dict[str, int]:
        """KontorError and its subclasses (by name, over all modules) with their class-level `status`."""
        sinks: dict[str, int] = {}
        classes = [n for tree in self.trees.values() for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
        changed = True
        while changed:
            changed = False
            for cls in classes:
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", None) for b in cls.bases}
                if cls.name in sinks or not (cls.name == "KontorError" or bases & sinks.keys()):
                    continue
                status = next((sinks[b] for b in bases if b in sinks), 400)
                for stmt in cls.body:
                    if isinstance(stmt, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id == "status" for t in stmt.targets
                    ):
                        status = ast.literal_eval(stmt.value)
                sinks[cls.name] = status
                changed = True
        return sinks

    def _scan(self, module: str, tree: ast.Module) -> None:
        parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                parents[child] = node
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict) and node.keys:
                self._status_dict(module, node)
            if not isinstance(node, ast.Call):
                continue
            name = _callee(node)
            where = f"{module}:{node.lineno}"
            if name in self.sinks:
                arg = _argument(node, 0, "code")
                self._record(module, tree, parents, node, arg, self.sinks[name], where)
            elif name == "problem":
                status_arg = _argument(node, -1, "status")
                status = status_arg.value if isinstance(status_arg, ast.Constant) else None
                self._record(module, tree, parents, node, _argument(node, -1, "code"), status, where)

    def _status_dict(self, module: str, node: ast.Dict) -> None:
        pairs = list(zip(node.keys, node.values, strict=True))
        if all(
            isinstance(k, ast.Constant)
            and isinstance(k.value, int)
            and 400 <= k.value < 600
            and isinstance(v, ast.Constant)
            and isinstance(v.value, str)
            and CODE_SHAPE.match(v.value)
            for k, v in pairs
        ):
            for k, v in pairs:
                assert isinstance(k, ast.Constant)
                assert isinstance(v, ast.Constant)
                self.uses.append(Use(v.value, k.value, f"{module}:{node.lineno}"))

    def _record(
        self,
        module: str,
        tree: ast.Module,
        parents: dict[ast.AST, ast.AST],
        call: ast.Call,
        arg: ast.expr | None,
        status: int | None,
        where: str,
    ) -> None:
        codes = self._resolve(module, tree, parents, call, arg, depth=0)
        if codes is None:
            self.unresolved.append(f"{where}: {ast.unparse(arg) if arg else '(no code)'}")
            return
        self.uses.extend(Use(code, status, where) for code in codes)

    def _resolve(
        self,
        module: str,
        tree: ast.Module,
        parents: dict[ast.AST, ast.AST],
        at: ast.AST,
        arg: ast.expr | None,
        depth: int,
    ) -> list[str] | None:
        """The codes `arg` (an expression at node `at`) can be; [] for `exc.code`; None when unknown."""
        if depth > 5 or arg is None:
            return None
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return [arg.value]
        if isinstance(arg, ast.JoinedStr):
            head = arg.values[0] if arg.values else None
            prefix = head.value if isinstance(head, ast.Constant) and isinstance(head.value, str) else ""
            return [prefix + "<"]
        if isinstance(arg, ast.Attribute) and arg.attr == "code":
            return []  # an error raised elsewhere, passed on: its own call site counts
        if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute) and arg.func.attr == "get":
            return self._resolve(module, tree, parents, at, _argument(arg, 1, "default"), depth + 1)
        if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name):
            helper = _function(tree, arg.func.id)
            if helper is None:
                return None
            found: list[str] = []
            for ret in (n for n in ast.walk(helper) if isinstance(n, ast.Return) and n.value is not None):
                if isinstance(ret.value, ast.Constant) and ret.value.value is None:
                    continue
                codes = self._resolve(module, tree, parents, ret, ret.value, depth + 1)
                if codes is None:
                    return None
                found += codes
            return found
        if not isinstance(arg, ast.Name):
            return None
        scope = parents.get(at)
        while scope is not None:
            if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
                bound = self._bound_in(module, tree, parents, scope, arg.id, depth)
                if bound is not None:
                    return bound
            scope = parents.get(scope)
        return None

    def _bound_in(
        self,
        module: str,
        tree: ast.Module,
        parents: dict[ast.AST, ast.AST],
        func: ast.FunctionDef | ast.AsyncFunctionDef,
        name: str,
        depth: int,
    ) -> list[str] | None:
        params = [a.arg for a in [*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs]]
        if name in params:  # a helper taking the code: its callers' arguments count
            index = params.index(name) if name not in [a.arg for a in func.args.kwonlyargs] else -1
            callers = [(module, tree, parents, n) for n in ast.walk(tree) if _calls(n, func.name)]
            if not callers:  # a helper shared by a package's modules: its callers in the modules that import it
                callers = [
                    (other, t, _parents(t), n)
                    for other, t in self.trees.items()
                    if other != module and _imports(t, func.name)
                    for n in ast.walk(t)
                    if _calls(n, func.name)
                ]
            found: list[str] = []
            for where, at_tree, at_parents, caller in callers:
                arg = _argument(caller, index, name)
                codes = self._resolve(where, at_tree, at_parents, caller, arg, depth + 1)
                if codes is None:
                    return None
                found += codes
            return found if callers else None
        for node in ast.walk(func):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                return self._resolve(module, tree, parents, node, node.value, depth + 1)
            if isinstance(node, ast.For) and name in {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}:
                listed = [
                    c.value
                    for c in ast.walk(node.iter)
                    if isinstance(c, ast.Constant) and isinstance(c.value, str) and CODE_SHAPE.match(c.value)
                ]
                return listed or None
        return None


def _callee(call: ast.Call) -> str | None:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def _argument(call: ast.Call, index: int, keyword: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    if 0 <= index < len(call.args) and not isinstance(call.args[index], ast.Starred):
        return call.args[index]
    return None


def _calls(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Call) and _callee(node) == name


def _imports(tree: ast.Module, name: str) -> bool:
    """Whether the module imports `name` from another module (`from desk.web.common import path_id`)."""
    return any(isinstance(n, ast.ImportFrom) and any(a.name == name for a in n.names) for n in tree.body)


def _parents(tree: ast.Module) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _function(tree: ast.Module, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    return next(
        (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name), None
    )


def _source() -> dict[str, str]:
    return {
        str(path.relative_to(ROOT)): path.read_text(encoding="utf-8")
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _problems(scan: Scan) -> list[str]:
    """What is wrong between the scanned uses and the catalogue, one line each."""
    wrong = [f"{u}: the code is not a literal, an f-string or a name bound to them" for u in scan.unresolved]
    families = {f.prefix + "<": f for f in FAMILIES}
    used: dict[str, list[Use]] = defaultdict(list)
    for use in scan.uses:
        entry = families.get(use.code) or CODES.get(use.code)
        if entry is None:
            wrong.append(f"{use.where}: {use.code!r} is not in ledger.problem_codes")
            continue
        used[entry.code].append(use)
        if use.status is not None and entry.statuses and use.status not in entry.statuses:
            wrong.append(f"{use.where}: {use.code!r} answered with {use.status}; the catalogue says {entry.statuses}")
    wrong += [f"{p.code!r} is catalogued but raised nowhere" for p in CATALOGUE if p.code not in used]
    return wrong


@pytest.fixture(scope="module")
def scan() -> Scan:
    return Scan(_source())


def test_every_code_raised_is_catalogued_with_its_status_and_every_catalogued_code_is_raised(scan: Scan) -> None:
    assert len(scan.uses) > 200, "the scan found too few call sites: has the way errors are raised changed?"
    assert _problems(scan) == []


def test_the_scan_finds_an_uncatalogued_code_a_wrong_status_and_an_unresolvable_code() -> None:
    files = _source()
    files["payments/extra.py"] = (
        "from ledger.errors import Conflict, NotFound\n"
        "def f(code):\n"
        "    raise Conflict('period_invalid', 'x')\n"  # catalogued as 422
        "def g():\n"
        "    raise NotFound('no_such_code_anywhere', 'x')\n"
        "def h(x):\n"
        "    raise NotFound(x.upper(), 'x')\n"
    )
    problems = _problems(Scan(files))
    assert problems[0].startswith("payments/extra.py:7: x.upper(): the code is not"), problems
    assert "payments/extra.py:3: 'period_invalid' answered with 409; the catalogue says (422,)" in problems
    assert "payments/extra.py:5: 'no_such_code_anywhere' is not in ledger.problem_codes" in problems


def test_a_catalogued_code_raised_nowhere_is_reported() -> None:
    files = {k: v.replace('"datev_settings_missing"', '"datev_settings_missing_x"') for k, v in _source().items()}
    problems = _problems(Scan(files))
    assert "'datev_settings_missing' is catalogued but raised nowhere" in problems


def test_each_code_has_one_status_and_a_meaning() -> None:
    assert len(CODES) + len(FAMILIES) == len(CATALOGUE), "a code is listed twice"
    for p in CATALOGUE:
        assert CODE_SHAPE.match(p.code.replace("<", "").replace(">", "")), p.code
        assert p.meaning, p.code
        assert "\n" not in p.meaning, p.code
        assert len(p.statuses) == 1 or p.is_family, p.code


def test_the_readme_table_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert README_START in readme
    assert README_END in readme
    assert problem_codes.readme_with_table(readme) == readme, (
        "the README's problem-code table differs from ledger/problem_codes.py: "
        "run `python -m ledger.problem_codes --write-readme`"
    )

"""Each package's SQL touches only its own tables and functions and those of lower layers (desk -> dunning ->
payments -> ledger, the layers import-linter holds the Python imports to).

Who owns what is read from schema.sql: each package owns one section (`-- Section owned by <package>`), in the
order of the layers, and owns the tables, sequences and functions created there. Checked against that:
- each section of schema.sql (foreign keys, indexes, triggers, function bodies);
- each migration in ledger/migrations/, owned by the package its file name names (NNNN_<owner>_<name>.sql),
  which also creates only tables of its owner's section;
- the SQL in each package's Python: every string literal (f-strings with their placeholders blanked; docstrings
  left out) is read for the tables after FROM (and its comma list), JOIN, INTO, UPDATE, TABLE, REFERENCES, ON and
  TRUNCATE, the sequences in nextval('...'), the functions called, and the table of copy_records_to_table.

SQL keywords are written in capitals in this code base, so prose ("read from orders") is not mistaken for a
query; a query string that starts in lower case fails the last test instead of escaping the check. Table names
built at run time (f"... FROM {table}") are not seen here; ledger/rotation.py gets its tables from the plugins.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from ledger.migrate import OWNERS, load_migrations, schema_sql

ROOT = Path(__file__).resolve().parent.parent.parent
LAYER = {owner: rank for rank, owner in enumerate(OWNERS)}  # ledger 0 ... desk 3: a package may use ranks <= its own

_SECTION = re.compile(r"^-- Section owned by (\w+)\b", re.MULTILINE)
_CREATED = re.compile(
    r"\bCREATE\s+(?:UNLOGGED\s+)?(?:TABLE|SEQUENCE|(?:OR\s+REPLACE\s+)?FUNCTION)\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)"
)
_AFTER_KEYWORD = re.compile(
    r"\b(?:JOIN|INTO|UPDATE|TABLE|REFERENCES|ON|TRUNCATE)\s+(?:ONLY\s+)?(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(\w+)"
)
_FROM = re.compile(r"\bFROM\s+([^;()]*)")
_FROM_END = re.compile(
    r"\b(?:WHERE|JOIN|LEFT|RIGHT|INNER|FULL|CROSS|GROUP|ORDER|LIMIT|OFFSET|ON|USING|UNION|EXCEPT|INTERSECT|HAVING|"
    r"WINDOW|FOR|RETURNING|SET|TABLESAMPLE|LATERAL|NATURAL)\b"
)
_CALL = re.compile(r"\b(\w+)\s*\(")
_SEQUENCE = re.compile(r"\bnextval\('(\w+)'")
_CTE = re.compile(r"\b(\w+)\s+AS\s+(?:NOT\s+)?(?:MATERIALIZED\s+)?\(")
_COMMENT = re.compile(r"--[^\n]*")
_LOWER_QUERY = re.compile(r"^\s*(?:select|insert\s+into|update|delete\s+from|with)\s+\w", re.IGNORECASE)


@dataclass(frozen=True)
class Use:
    where: str  # file:line
    user: str  # the package whose SQL it is
    name: str  # the table, sequence or function
    owner: str  # the package that owns it


def schema_sections() -> list[tuple[str, str]]:
    """schema.sql cut into (owner, text) by its section headers, in file order."""
    sql = schema_sql()
    heads = list(_SECTION.finditer(sql))
    assert heads, "schema.sql has no '-- Section owned by <package>' headers"
    return [
        (h[1], sql[h.start() : (heads[i + 1].start() if i + 1 < len(heads) else len(sql))]) for i, h in enumerate(heads)
    ]


def owners() -> dict[str, str]:
    """Table, sequence and function name -> the package whose section of schema.sql creates it."""
    owned: dict[str, str] = {}
    for owner, text in schema_sections():
        for name in _CREATED.findall(_COMMENT.sub("", text)):
            assert owned.setdefault(name, owner) == owner, f"{name} is created in the sections of two packages"
    return owned


def referenced(sql: str) -> set[str]:
    """The identifiers `sql` uses as tables, sequences or called functions (a superset: filter by known names);
    names defined as common table expressions in the same text are left out."""
    sql = _COMMENT.sub("", sql)
    names = set(_AFTER_KEYWORD.findall(sql)) | set(_SEQUENCE.findall(sql)) | set(_CALL.findall(sql))
    for match in _FROM.finditer(sql):
        clause = match[1]
        end = _FROM_END.search(clause)
        for item in (clause[: end.start()] if end else clause).split(","):
            words = item.split()
            if words and re.fullmatch(r"\w+", words[0]):
                names.add(words[0])
    return names - set(_CTE.findall(sql))


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _violations_in(sql: str, user: str, where: str, owned: dict[str, str]) -> list[Use]:
    return [
        Use(where, user, name, owned[name])
        for name in sorted(referenced(sql))
        if name in owned and LAYER[owned[name]] > LAYER[user]
    ]


def python_sql(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string literal of a Python file but its docstrings; f-strings with their
    placeholders blanked, and the table name of copy_records_to_table as `INTO <table>`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    inside_fstrings = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(
                p.value if isinstance(p, ast.Constant) and isinstance(p.value, str) else " _ " for p in node.values
            )
            found.append((node.lineno, text))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings and id(node) not in inside_fstrings:
                found.append((node.lineno, node.value))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr.startswith("copy_")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, f"INTO {node.args[0].value}"))
    return found


def test_schema_sql_has_one_section_per_package_bottom_up() -> None:
    assert [owner for owner, _ in schema_sections()] == list(OWNERS)
    sql = schema_sql()
    before = sql[: _SECTION.search(sql).start()]  # type: ignore[union-attr]
    assert _CREATED.findall(_COMMENT.sub("", before)) == [], "schema.sql creates something before its first section"


def test_each_section_of_schema_sql_uses_only_its_own_and_lower_sections() -> None:
    owned = owners()
    found = []
    for owner, text in schema_sections():
        found += _violations_in(text, owner, f"schema.sql section {owner}", owned)
    assert found == []


def test_each_migration_touches_only_its_owners_and_lower_layers_tables() -> None:
    owned = owners()
    found: list[Use] = []
    for migration in load_migrations():
        where = f"ledger/migrations/{migration.name}.sql"
        found += _violations_in(migration.sql, migration.owner, where, owned)
        for name in _CREATED.findall(_COMMENT.sub("", migration.sql)):
            if name in owned and owned[name] != migration.owner:
                found.append(Use(where + " creates", migration.owner, name, owned[name]))
    assert found == []


def test_each_packages_sql_in_python_touches_only_its_own_and_lower_layers_tables() -> None:
    owned = owners()
    found: list[Use] = []
    for package in OWNERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, text in python_sql(path):
                found += _violations_in(text, package, f"{path.relative_to(ROOT)}:{line}", owned)
    assert found == [], "\n".join(f"{u.where}: {u.user} uses {u.name} of {u.owner}" for u in found)


def test_queries_are_written_with_capital_keywords() -> None:
    lower = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in OWNERS
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, text in python_sql(path)
        if _LOWER_QUERY.match(text) and re.search(r"\b(?:from|into|set|values)\b", text)
    ]
    assert lower == []


def test_the_reader_sees_what_it_must() -> None:
    """The parser itself: tables after each keyword and in a FROM list, sequences, calls; CTE names left out."""
    sql = """WITH moved AS (DELETE FROM balance_totals RETURNING 1)
        SELECT * FROM entries e, chain_watermark w JOIN lines l ON l.entry_id = e.entry_id
        WHERE x IN (SELECT 1 FROM orders) AND nextval('entry_id_seq') > 0 AND kontor_business_lock_key(1, 2) > 0;
        INSERT INTO dunning_runs (a) SELECT 1 FROM moved; UPDATE web_sessions SET a = 1; -- FROM payouts
        CREATE INDEX i ON write_offs (a); ALTER TABLE ONLY settlements ADD b int REFERENCES businesses (c)"""
    assert referenced(sql) >= {
        "balance_totals", "entries", "chain_watermark", "lines", "orders", "entry_id_seq",
        "kontor_business_lock_key", "dunning_runs", "web_sessions", "write_offs", "settlements", "businesses",
    }  # fmt: skip
    assert "moved" not in referenced(sql)
    assert "payouts" not in referenced(sql)
    owned = owners()
    assert (owned["entries"], owned["orders"], owned["dunning_runs"], owned["web_sessions"]) == (
        "ledger",
        "payments",
        "dunning",
        "desk",
    )
    assert owned["kontor_post_entries"] == "ledger"

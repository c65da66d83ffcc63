"""Reports as tables: aligned for a terminal (amounts right-aligned), or CSV, or the API's JSON as it is.

Names and descriptions are the merchant's text: on a terminal their control characters are shown escaped
(`ledger.textsafe.terminal`), in CSV formula-like cells are neutralised and CR/LF fields quoted.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from ledger.textsafe import cells, csv_writer, terminal

__all__ = ["Format", "Table", "render"]

Format = Literal["table", "csv", "json"]


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    right: set[int] = field(default_factory=set)  # columns holding amounts
    footer: list[list[str]] = field(default_factory=list)  # totals, below a rule
    notes: list[str] = field(default_factory=list)  # lines printed under the table


def render(table: Table, data: Any, fmt: Format) -> str:
    if fmt == "json":
        return msgspec.json.format(msgspec.json.encode(data), indent=2).decode()
    if fmt == "csv":
        out = io.StringIO()
        writer = csv_writer(out)
        writer.writerow(table.columns)
        writer.writerows(cells(row) for row in [*table.rows, *table.footer])
        return out.getvalue()
    return _aligned(table)


def _aligned(table: Table) -> str:
    shown = [[terminal(c) for c in row] for row in [table.columns, *table.rows, *table.footer]]
    columns, rows, footer = shown[0], shown[1 : 1 + len(table.rows)], shown[1 + len(table.rows) :]
    widths = [max(len(row[i]) for row in shown) for i in range(len(table.columns))]

    def line(row: list[str]) -> str:
        padded = [
            c.rjust(w) if i in table.right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * w for w in widths)
    parts = [terminal(table.title), "", line(columns), rule, *map(line, rows)]
    if footer:
        parts += [rule, *map(line, footer)]
    parts += map(terminal, table.notes)
    return "\n".join(parts) + "\n"

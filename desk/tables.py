"""Reports as tables: aligned for a terminal (amounts right-aligned), or CSV, or the API's JSON as it is."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

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
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(table.columns)
        writer.writerows(table.rows)
        writer.writerows(table.footer)
        return out.getvalue()
    everything = [table.columns, *table.rows, *table.footer]
    widths = [max(len(row[i]) for row in everything) for i in range(len(table.columns))]

    def line(row: list[str]) -> str:
        cells = [
            c.rjust(w) if i in table.right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    parts = [table.title, "", line(table.columns), rule, *map(line, table.rows)]
    if table.footer:
        parts += [rule, *map(line, table.footer)]
    parts += table.notes
    return "\n".join(parts) + "\n"

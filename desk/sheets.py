"""The tables of the web pages, and the same tables as CSV and XLSX downloads.

A page builds each of its tables once as a `Sheet` (columns with a kind, rows of typed values); the template
renders it and `?format=csv|xlsx&table=<id>` sends it as a file, so a download always holds what the page
shows. Amounts are the ledger's decimal strings (never floats in between).

CSV follows the spreadsheet conventions of the business code's language (`Dialect`): German-speaking business
codes get `;` between fields and a decimal comma (what Excel and LibreOffice expect with a German locale),
every other one `,` and a decimal point; no digit grouping, dates as ISO 8601, UTF-8 with a byte-order mark so
that Excel recognises the encoding. Every text cell goes through `ledger.textsafe.cell` (a formula-like text
gets a leading apostrophe, OWASP "CSV Injection") and `csv_writer` (RFC 4180 line ends). XLSX writes amounts
as number cells with the currency's decimals, dates as date cells, and text as string cells only (never a
formula), with Excel's quote prefix on formula-like texts.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

import xlsxwriter

from ledger.money import currency_decimals
from ledger.textsafe import cell, csv_writer, looks_like_formula

__all__ = ["FILE_FORMATS", "XLSX", "Cell", "Column", "Dialect", "Sheet", "SheetFile", "sheet_file"]

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Kind = Literal["text", "amount", "date", "int"]
FILE_FORMATS = ("csv", "xlsx")


@dataclass(frozen=True)
class Column:
    label: str
    kind: Kind = "text"


@dataclass(frozen=True)
class Cell:
    """A value with how the page shows it: `display` replaces the formatted value on the page only (e.g. an
    amount with its side, "1.234,50 S"); `href` makes it a link; `attrs` are extra attributes of the cell."""

    value: Any
    display: str | None = None
    href: str | None = None
    currency: str | None = None
    attrs: tuple[tuple[str, str], ...] = ()


@dataclass
class Row:
    cells: list[Any]  # a plain value, or a Cell
    data: dict[str, str] = field(default_factory=dict)  # the row's data-* attributes

    def cell(self, i: int) -> Cell:
        """The i-th cell (an empty one past the row's end: totals rows name fewer columns)."""
        value = self.cells[i] if i < len(self.cells) else None
        return value if isinstance(value, Cell) else Cell(value)


@dataclass
class Sheet:
    id: str  # the table's HTML id, and its name in ?table=
    title: str
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    footer: list[Row] = field(default_factory=list)
    empty: str = ""  # shown when there are no rows
    currency: str = "EUR"

    def add(self, *cells: Any, **data: Any) -> Row:
        row = Row(list(cells), {k.replace("_", "-"): str(v) for k, v in data.items() if v is not None})
        self.rows.append(row)
        return row

    def total(self, *cells: Any, **data: Any) -> Row:
        row = Row(list(cells), {k.replace("_", "-"): str(v) for k, v in data.items() if v is not None})
        self.footer.append(row)
        return row


@dataclass(frozen=True)
class Dialect:
    delimiter: str
    decimal: str

    @staticmethod
    def of(language: str) -> Dialect:
        return Dialect(";", ",") if language == "de" else Dialect(",", ".")


@dataclass(frozen=True)
class SheetFile:
    body: bytes
    media_type: str
    name: str


def sheet_file(sheet: Sheet, file_format: str, dialect: Dialect, name: str) -> SheetFile:
    """`sheet` as a CSV or XLSX file named `name` (without extension)."""
    if file_format == "xlsx":
        return SheetFile(_xlsx(sheet), XLSX, f"{name}.xlsx")
    return SheetFile(_csv(sheet, dialect).encode("utf-8-sig"), "text/csv", f"{name}.csv")


def _plain(value: Any, kind: Kind, dialect: Dialect) -> str:
    if value is None or value == "":
        return ""
    if kind == "amount":
        return str(value).replace(".", dialect.decimal)
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return cell(value)


def _csv(sheet: Sheet, dialect: Dialect) -> str:
    out = io.StringIO()
    writer = csv_writer(out, delimiter=dialect.delimiter)
    writer.writerow([cell(c.label) for c in sheet.columns])
    for row in [*sheet.rows, *sheet.footer]:
        writer.writerow(
            [_plain(row.cell(i).value, col.kind, dialect) for i, col in enumerate(sheet.columns) if i < len(row.cells)]
        )
    return out.getvalue()


def _xlsx(sheet: Sheet) -> bytes:
    out = io.BytesIO()
    book = xlsxwriter.Workbook(
        out, {"in_memory": True, "strings_to_formulas": False, "strings_to_numbers": False, "strings_to_urls": False}
    )
    ws = book.add_worksheet(sheet.id[:31])
    bold = book.add_format({"bold": True})
    quoted = book.add_format({"quote_prefix": True})
    day = book.add_format({"num_format": "yyyy-mm-dd"})
    money: dict[str, Any] = {}

    def amount_format(currency: str) -> Any:
        if currency not in money:
            decimals = currency_decimals(currency)
            money[currency] = book.add_format({"num_format": "#,##0" + ("." + "0" * decimals if decimals else "")})
        return money[currency]

    ws.write_row(0, 0, [c.label for c in sheet.columns], bold)
    for n, row in enumerate([*sheet.rows, *sheet.footer], start=1):
        for i, col in enumerate(sheet.columns):
            if i >= len(row.cells):
                continue
            c = row.cell(i)
            value = c.value
            if value is None or value == "":
                continue
            if col.kind == "amount":
                # exact to the cent below 2^53 minor units: the shortest repr of this double is the decimal again
                ws.write_number(n, i, float(Decimal(str(value))), amount_format(c.currency or sheet.currency))
            elif col.kind == "int":
                ws.write_number(n, i, int(value))
            elif isinstance(value, datetime):
                ws.write_string(n, i, value.isoformat(timespec="seconds"))
            elif isinstance(value, date):
                ws.write_datetime(n, i, datetime(value.year, value.month, value.day), day)  # noqa: DTZ001
            else:
                text = str(value)
                ws.write_string(n, i, text, quoted if looks_like_formula(text) else None)
    ws.set_column(0, max(len(sheet.columns) - 1, 0), 16)
    ws.freeze_panes(1, 0)
    book.close()
    return out.getvalue()

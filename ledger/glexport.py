"""The month-end G/L report as files: CSV (UTF-8, comma, decimal point) and XLSX (one sheet, numeric cells).

Text cells (account names, alternative numbers) are the merchant's own text: in CSV a text a spreadsheet would
read as a formula gets a leading apostrophe (`ledger.textsafe.cell`), in XLSX every text is written as a string
cell, and a formula-like one carries Excel's quote prefix, so it stays text even when edited.

XLSX cells are IEEE doubles by the format's definition; amounts are written from their exact decimal strings
and are exact to the cent for any amount below 2^53 minor units (90 trillion EUR), with a 2-decimal (or the
currency's) number format, so that a spreadsheet sums them as the ledger does.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import xlsxwriter

from ledger import datev, reports
from ledger.context import Kontor
from ledger.domain import Business
from ledger.money import currency_decimals
from ledger.schemas import GLReportOut
from ledger.textsafe import cells, csv_writer, looks_like_formula

__all__ = ["FILE_FORMATS", "GL_HEADER", "XLSX", "GLFile", "gl_csv", "gl_file", "gl_xlsx"]

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FILE_FORMATS = {"csv": "text/csv", "xlsx": XLSX, "datev": "text/csv"}  # format -> media type


@dataclass(frozen=True)
class GLFile:
    body: bytes
    media_type: str
    charset: str  # of text files (Litestar appends it to text/* media types)
    name: str


async def gl_file(ctx: Kontor, business: Business, period: str, file_format: str, *, created: datetime) -> GLFile:
    """The month's G/L report as a file: CSV, XLSX, or DATEV (the month's Buchungsstapel)."""
    if file_format == "datev":
        body = await datev.buchungsstapel(ctx, business, period, created=created)
        return GLFile(body, FILE_FORMATS["datev"], datev.CHARSET, datev.file_name(business, period))
    report = await reports.gl_report(ctx, business, period)
    # a month's file is built in a worker thread: the event loop serves every other request meanwhile
    body = await asyncio.to_thread(lambda: gl_csv(report).encode() if file_format == "csv" else gl_xlsx(report))
    return GLFile(body, FILE_FORMATS[file_format], "utf-8", f"gl-{business.code}-{period}.{file_format}")


GL_HEADER = [
    "business", "country", "period", "account", "alt_number", "name", "type", "tax_code", "currency",
    "opening_debit", "opening_credit", "debit", "credit", "closing_debit", "closing_credit",
]  # fmt: skip
_AMOUNTS = GL_HEADER[9:]


def _rows(report: GLReportOut) -> list[list[str]]:
    rows = [
        [str(report.business), r.country, report.period, r.account, r.alt_number or "", r.name, r.type, r.tax_code,
         r.currency, *(getattr(r, a) for a in _AMOUNTS)]
        for r in report.rows
    ]  # fmt: skip
    rows += [
        [str(report.business), report.country, report.period, "TOTAL", "", "", "", "", t.currency,
         *(getattr(t, a) for a in _AMOUNTS)]
        for t in report.totals
    ]  # fmt: skip
    return rows


def gl_csv(report: GLReportOut) -> str:
    out = io.StringIO()
    writer = csv_writer(out)
    writer.writerow(GL_HEADER)
    writer.writerows(cells(row) for row in _rows(report))
    return out.getvalue()


def gl_xlsx(report: GLReportOut) -> bytes:
    out = io.BytesIO()
    # text is never turned into formulas, numbers or links: every text cell below is a string cell
    book = xlsxwriter.Workbook(
        out, {"in_memory": True, "strings_to_formulas": False, "strings_to_numbers": False, "strings_to_urls": False}
    )
    sheet = book.add_worksheet(f"GL {report.business} {report.period}")
    bold = book.add_format({"bold": True})
    quoted = book.add_format({"quote_prefix": True})
    formats = {}
    sheet.write_row(0, 0, GL_HEADER, bold)
    for n, row in enumerate(_rows(report), start=1):
        currency = row[8]
        if currency not in formats:
            decimals = currency_decimals(currency)
            formats[currency] = book.add_format({"num_format": "#,##0" + ("." + "0" * decimals if decimals else "")})
        for col, text in enumerate(row[:9]):
            style = bold if row[3] == "TOTAL" else quoted if looks_like_formula(text) else None
            sheet.write_string(n, col, text, style)
        for col, text in enumerate(row[9:], start=9):
            # the shortest repr of this double is the decimal text again (see the module docstring)
            sheet.write_number(n, col, float(Decimal(text)), formats[currency])
    sheet.set_column(0, 8, 12)
    sheet.set_column(5, 5, 34)
    sheet.set_column(9, 14, 15)
    sheet.freeze_panes(1, 0)
    book.close()
    return out.getvalue()

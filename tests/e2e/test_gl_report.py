"""The month-end G/L report: JSON, CSV and XLSX read back, figures against the trial balance."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import openpyxl

from ledger.glexport import GL_HEADER
from tests.conftest import Tenant


def minor(text: str) -> int:
    return int(Decimal(text) * 100)


async def books(t: Tenant) -> None:
    r = await t.client.patch(t.url("/accounts/8400"), headers=t.headers(), json={"alt_number": "400000"})
    assert r.status_code == 200, r.text
    await t.sale("C-1", "119.00", "100.00", "19.00", date="2026-09-30")
    await t.sale("C-2", "238.00", "200.00", "38.00", date="2026-10-05")
    paid = await t.post_entry(
        [{"account": "1200", "debit": "119.00"}, {"account": "1400", "customer": "C-1", "credit": "119.00"}],
        date="2026-10-20",
    )
    assert paid.status_code == 201
    await t.sale("C-3", "11.90", "10.00", "1.90", date="2026-11-02")


async def test_the_gl_report_of_a_closed_month(tenant: Tenant) -> None:
    t = tenant
    await books(t)
    assert (
        await t.post("/periods/2026-10/close", {"reason": "month end"}, key=t.accountant_key, idem=None)
    ).status_code == 200
    report = (await t.get("/periods/2026-10/gl-report", key=t.accountant_key)).json()
    assert (report["period"], report["from_date"], report["to_date"], report["closed"]) == (
        "2026-10", "2026-10-01", "2026-10-31", True,
    )  # fmt: skip
    rows = {r["account"]: r for r in report["rows"]}
    assert {a: (r["opening_debit"], r["opening_credit"], r["debit"], r["credit"], r["closing_debit"],
                r["closing_credit"]) for a, r in rows.items()} == {
        "1200": ("0.00", "0.00", "119.00", "0.00", "119.00", "0.00"),
        "1400": ("119.00", "0.00", "238.00", "119.00", "238.00", "0.00"),
        "1776": ("0.00", "19.00", "0.00", "38.00", "0.00", "57.00"),
        "8400": ("0.00", "100.00", "0.00", "200.00", "0.00", "300.00"),
    }  # fmt: skip
    assert (rows["8400"]["alt_number"], rows["8400"]["tax_code"], rows["8400"]["country"]) == ("400000", "19", "DE")
    assert rows["1200"]["tax_code"] == ""
    assert report["totals"] == [
        {"currency": "EUR", "opening_debit": "119.00", "opening_credit": "119.00", "debit": "357.00",
         "credit": "357.00", "closing_debit": "357.00", "closing_credit": "357.00"}
    ]  # fmt: skip
    # the closing columns are the trial balance at the month's end
    trial = (await t.get("/reports/trial-balance", key=t.accountant_key, as_of="2026-10-31")).json()
    assert {r["account"]: (r["debit"], r["credit"]) for r in trial["rows"]} == {
        a: (r["closing_debit"], r["closing_credit"]) for a, r in rows.items()
    }
    # the next month opens where this one closed
    november = (await t.get("/periods/2026-11/gl-report", key=t.accountant_key)).json()
    assert november["closed"] is False
    assert {r["account"]: (r["opening_debit"], r["opening_credit"]) for r in november["rows"]} == {
        a: (r["closing_debit"], r["closing_credit"]) for a, r in rows.items()
    }


async def test_the_gl_report_as_csv_and_xlsx(tenant: Tenant) -> None:
    t = tenant
    await books(t)
    report = (await t.get("/periods/2026-10/gl-report", key=t.accountant_key)).json()
    as_csv = await t.get("/periods/2026-10/gl-report", key=t.accountant_key, format="csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert f'filename="gl-{t.business}-2026-10.csv"' in as_csv.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert rows[0] == GL_HEADER
    body = [r for r in rows[1:] if r[3] != "TOTAL"]
    assert [r[3] for r in body] == [r["account"] for r in report["rows"]]
    total = next(r for r in rows[1:] if r[3] == "TOTAL")
    for column in ("debit", "credit", "closing_debit", "closing_credit"):
        i = GL_HEADER.index(column)
        assert sum(minor(r[i]) for r in body) == minor(total[i]) == minor(report["totals"][0][column])
    as_xlsx = await t.get("/periods/2026-10/gl-report", key=t.accountant_key, format="xlsx")
    assert as_xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = openpyxl.load_workbook(io.BytesIO(as_xlsx.content), read_only=True).active
    assert sheet is not None
    cells = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert cells[0] == GL_HEADER
    for csv_row, xlsx_row in zip(rows[1:], cells[1:], strict=True):
        assert [str(v or "") for v in xlsx_row[:9]] == csv_row[:9]
        assert [Decimal(str(v)).quantize(Decimal("0.01")) for v in xlsx_row[9:]] == [Decimal(v) for v in csv_row[9:]]


async def test_bad_gl_requests(tenant: Tenant) -> None:
    r = await tenant.get("/periods/2026-13/gl-report", key=tenant.accountant_key)
    assert (r.status_code, r.json()["code"]) == (422, "period_invalid")
    r = await tenant.get("/periods/2026-10/gl-report", key=tenant.accountant_key, format="pdf")
    assert (r.status_code, r.json()["errors"][0]["field"]) == (400, "format")

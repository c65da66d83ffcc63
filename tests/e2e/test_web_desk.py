"""The accountant's pages and the find API on books with real activity (tests/e2e/desk_books.py): every page
renders script-free in the business code's language, every table downloads as CSV and XLSX, the figures are the
API's, and the forms change the books only with the session's CSRF token and a reason."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import openpyxl
import pytest
from litestar import Litestar

from desk.i18n import LOCALE_DIR, Language
from tests.conftest import Simulator, Tenant
from tests.e2e.desk_books import Books, csrf_of, downloads, french_books, german_books, rows_of, sign_in
from tests.e2e.test_dunning_letters import text_of

PAGES = [
    "journal", "journal/new", "trial-balance", "accounts/1400/register", "income-statement", "balance-sheet", "vat",
    "ageing", "customers", "customers/C-100", "orders", "orders/wd-2", "settlements", "bank-statements",
    "reconciliation", "disputes", "dunning", "dunning/notices", "periods",
]  # fmt: skip


@pytest.fixture(scope="module")
async def books(app_client: httpx.AsyncClient, simulator: Simulator) -> Books:
    return await german_books(app_client, simulator, name="Desk Read GmbH")


@pytest.fixture(scope="module")
async def french(app_client: httpx.AsyncClient) -> Tenant:
    return await french_books(app_client)


@pytest.fixture
async def web(app: Litestar, books: Books) -> AsyncIterator[httpx.AsyncClient]:
    client = await sign_in(app, books.tenant.accountant_key)
    yield client
    await client.aclose()


async def detail_pages(web: httpx.AsyncClient, books: Books) -> list[str]:
    """The pages of one entry, settlement and bank statement, found through the list pages' links."""
    found = []
    for listing, pattern in [("journal", r'href="/ui/1001/(journal/\d+)"'),
                             ("settlements", r'href="/ui/1001/(settlements/[^"]+)"'),
                             ("bank-statements", r'href="/ui/1001/(bank-statements/[^"]+)"')]:  # fmt: skip
        html = (await web.get(f"/ui/1001/{listing}")).text
        link = re.search(pattern, html)
        assert link, listing
        found.append(link.group(1).replace("&amp;", "&"))
    return found


async def test_every_page_is_german_script_free_and_complete(web: httpx.AsyncClient, books: Books) -> None:
    Language.missing = set()
    try:
        for page in PAGES + await detail_pages(web, books):
            r = await web.get(f"/ui/1001/{page}")
            assert r.status_code == 200, (page, r.text[:500])
            assert r.headers["content-type"].startswith("text/html")
            csp = r.headers["content-security-policy"]
            assert "default-src 'none'" in csp, page
            assert "script-src" not in csp, page
            assert "<script" not in r.text.lower(), page
            assert '<html lang="de">' in r.text, page
            assert all(label in r.text for label in (">Abmelden<", ">Summen- und Saldenliste<")), page
            assert not any(label in r.text for label in (">Trial balance<", ">Sign out<")), page
        assert Language.missing == set(), "labels without a German translation"
    finally:
        Language.missing = None


async def test_german_labels_account_names_and_sides(web: httpx.AsyncClient, books: Books) -> None:
    trial = (await web.get("/ui/1001/trial-balance")).text
    assert '<th class="num" scope="col">Soll</th>' in trial
    assert '<th class="num" scope="col">Haben</th>' in trial
    assert "Forderungen aus Lieferungen und Leistungen" in trial
    assert "Erlöse 19 %" in trial
    assert "Umsatzsteuer 7 %" in trial
    register = rows_of((await web.get("/ui/1001/accounts/1400/register")).text, "register")
    assert {r["data"].get("side") for r in register} <= {None}  # sides are on the cells, not the rows
    html = (await web.get("/ui/1001/accounts/1400/register")).text
    assert re.search(r'data-side="DEBIT">[0-9.,]+ S<', html), "S (Soll) after a debit balance"


async def test_a_french_business_reads_english_with_dr_and_cr(app: Litestar, french: Tenant) -> None:
    web = await sign_in(app, french.accountant_key)
    for page in ["trial-balance", "journal", "vat", "ageing", "customers", "income-statement", "balance-sheet"]:
        r = await web.get(f"/ui/3003/{page}")
        assert r.status_code == 200, page
        assert all(label in r.text for label in ('<html lang="en">', ">Sign out<", ">Trial balance<")), page
        assert "Abmelden" not in r.text, page
    trial = (await web.get("/ui/3003/trial-balance")).text
    assert ">Revenue 20 %<" in trial
    assert ">Receivables (customer accounts)<" in trial
    assert "1\u202f260,00" in trial  # fr_FR writes its numbers its own way (the receivables: 1200 + 60)
    register = (await web.get("/ui/3003/accounts/1400/register")).text
    assert re.search(r'data-side="DEBIT">[0-9\s\u202f,.]+ Dr<', register)
    # CSV for a non-German business code: comma-separated, decimal point
    body = (await web.get("/ui/3003/trial-balance", params={"format": "csv", "table": "trial-balance"})).content
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == ["Account", "Name", "Alt. no.", "Currency", "Debit", "Credit"]
    assert ["1400", "Receivables (customer accounts)", "", "EUR", "1260.00", "0.00"] in rows
    # no UStVA table outside Germany
    assert 'id="ustva"' not in (await web.get("/ui/3003/vat")).text
    await web.aclose()


async def test_every_table_downloads_as_csv_and_xlsx(web: httpx.AsyncClient, books: Books) -> None:
    seen = set()
    for page in PAGES + await detail_pages(web, books):
        html = (await web.get(f"/ui/1001/{page}")).text
        links = downloads(html)
        tables = set(re.findall(r'<table id="([^"]+)"', html))
        assert {t for t, _ in links} >= tables - {"account", "correction-lines", "gl-report"}, page
        for table, file_format in links:
            base = page.split("?")[0]
            params = dict(re.findall(r"([a-z]+)=([^&]+)", page.split("?")[1])) if "?" in page else {}
            r = await web.get(f"/ui/1001/{base}", params={**params, "format": file_format, "table": table})
            assert r.status_code == 200, (page, table, file_format)
            assert f'filename="1001-{table}.{file_format}"' in r.headers["content-disposition"]
            if file_format == "csv":
                assert r.headers["content-type"].startswith("text/csv")
                text = r.content.decode("utf-8-sig")
                rows = list(csv.reader(io.StringIO(text), delimiter=";"))
                assert len(rows[0]) > 1, (page, table)  # German business code: semicolons
                amounts = re.findall(r"(?:^|;)(-?\d+[.,]\d{2})(?=;|\r\n)", text)
                assert all("," in a for a in amounts), (page, table, amounts[:3])  # decimal comma, no point
            else:
                book = openpyxl.load_workbook(io.BytesIO(r.content))
                sheet = book.active
                assert sheet is not None
                labels = [c.value for c in sheet[1]]
                th = re.search(rf'<table id="{re.escape(table)}">\s*<thead><tr>(.*?)</tr>', html, re.S)
                assert th
                shown = [
                    re.sub(r"<[^>]+>", "", x).replace("&amp;", "&")
                    for x in re.findall(r"<th[^>]*>(.*?)</th>", th.group(1))
                ]
                assert labels == shown, (page, table)
            seen.add((table, file_format))
    assert len(seen) >= 2 * 25


async def test_the_pages_show_the_apis_figures(web: httpx.AsyncClient, books: Books) -> None:
    t = books.tenant
    key = t.accountant_key
    api = (await t.get("/reports/trial-balance", key=key, as_of="2026-11-27")).json()
    shown = rows_of((await web.get("/ui/1001/trial-balance")).text, "trial-balance")
    assert [(r["data"]["account"], *r["amounts"]) for r in shown] == [
        (r["account"], r["debit"], r["credit"]) for r in api["rows"]
    ]
    ageing = (await t.get("/reports/receivables-ageing", key=key)).json()
    html = (await web.get("/ui/1001/ageing")).text
    assert [(r["data"]["customer"], r["amounts"][-1]) for r in rows_of(html, "ageing")] == [
        (r["customer"], r["total"]) for r in ageing["rows"]
    ]
    assert ageing["totals"]["days_over_90"] == "11.90"  # C-0's sale of 2026-07-20
    assert ageing["totals"]["days_61_90"] == "23.80"
    assert ageing["totals"]["days_31_60"] == "35.70"
    chart = re.search(r'<figure class="chart" id="chart-ageing">(.*?)</figure>', html, re.S)
    assert chart
    assert "<svg" in chart.group(1)
    assert "über 90 Tage" in chart.group(1)
    assert "11,90" in chart.group(1)
    # VAT: 2026-11 at 19 %: 50.00 sold, 50.00 returned; at 7 %: 20.00 sold, 5.00 goodwill
    vat = {(r["month"], r["rate"]): r for r in (await t.get("/reports/vat-summary", key=key, **{
        "from": "2026-01-01", "to": "2026-12-31"})).json()}  # fmt: skip
    assert (vat[("2026-11", "19")]["sales"], vat[("2026-11", "19")]["reductions"]) == ("50.00", "50.00")
    assert (vat[("2026-11", "7")]["taxable"], vat[("2026-11", "7")]["tax"]) == ("15.00", "1.05")
    ustva = rows_of((await web.get("/ui/1001/vat")).text, "ustva")
    november = next(r for r in ustva if r["data"]["month"] == "2026-11")
    assert november["amounts"][:4] == ["0.00", "0.00", "15.00", "1.05"]  # Kz 81, tax, Kz 86, tax
    # the customer page names the customer and links the notice's letter
    page = (await web.get("/ui/1001/customers/C-100")).text
    assert 'id="customer-name">Erika Mustermann<' in page
    notice = rows_of(page, "notices")[0]["data"]["notice"]
    assert f'href="/ui/1001/dunning/notices/{notice}/letter.pdf"' in page
    letter = await web.get(f"/ui/1001/dunning/notices/{notice}/letter.pdf")
    assert (letter.status_code, letter.headers["content-type"]) == (200, "application/pdf")
    assert "Erika Mustermann" in text_of(letter.content)
    # charts of the income statement and of Amazon Pay
    assert 'id="chart-monthly-sales"' in (await web.get("/ui/1001/income-statement")).text
    settlements = (await web.get("/ui/1001/settlements")).text
    assert 'id="chart-amazon-pay"' in settlements
    assert books.settlement_id in settlements


async def test_find_customers_orders_and_statements(books: Books) -> None:
    t = books.tenant
    key = t.accountant_key

    async def found(path: str, **params: Any) -> dict[str, Any]:
        r = await t.get(path, key=key, **params)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    everyone = await found("/customers")
    assert [c["customer"] for c in everyone["items"]] == ["C-0", "C-1", "C-100", "C-2", "K-2040"]
    c100 = next(c for c in everyone["items"] if c["customer"] == "C-100")
    assert (c100["name"], c100["balance"], c100["side"], c100["dunning_level"]) == ("Erika Mustermann", "119.00",
                                                                                    "DEBIT", 1)  # fmt: skip
    assert c100["oldest_due"] == "2026-11-27"
    for q, expected in [("muster", ["C-100"]), ("ERIKA M", ["C-100"]), ("özdemir h", ["K-2040"]), ("jürgen", ["K-2040"]),
                        ("c-1", ["C-1", "C-100"]), ("k-", ["K-2040"]), ("nobody", []), ("%", []), ("_", [])]:  # fmt: skip
        assert [c["customer"] for c in (await found("/customers", q=q))["items"]] == expected, q
    # pages of one, following the cursor
    seen, cursor = [], None
    while True:
        page = await found("/customers", limit="2", **({"cursor": cursor} if cursor else {}))
        seen += [c["customer"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [c["customer"] for c in everyone["items"]]
    # orders with their documents
    orders = await found("/orders", customer="K-2040")
    (order,) = orders["items"]
    assert {(d["kind"], d["reference"]) for d in order["documents"]} == {
        ("invoice", "RE-2026-0042"), ("return", "RT-2026-0007"), ("goodwill", "GS-2026-0003")}  # fmt: skip
    assert order["name"] == "Özdemir Handel KG (Jürgen Özdemir)"
    assert order["charges"]
    assert [o["order_reference"] for o in (await found("/orders"))["items"]] == ["wd-2", "wd-1"]  # newest first
    assert (await found("/orders", **{"from": "2026-11-01"}))["items"][0]["order_reference"] == "wd-2"
    assert (await found("/orders", status="declined"))["items"] == []
    first = await found("/orders", limit="1")
    assert [
        o["order_reference"] for o in (await found("/orders", limit="1", cursor=first["next_cursor"]))["items"]
    ] == ["wd-1"]
    # bank statements with their lines and matches
    (statement,) = (await found("/bank-statements"))["items"]
    assert statement["statement_id"] == "WD-ST-1"
    assert statement["account"] == "DE89370400440532013000"
    outcomes = [line["outcome"] for line in statement["lines"]]
    assert outcomes[-1] == "exception"
    assert statement["exceptions"][0]["amount"] == "12.34"
    one = await t.get(f"/bank-statements/{statement['statement_date']}/WD-ST-1", key=key)
    assert one.status_code == 200
    assert (one.json()["items"][0]["lines"], one.json()["next_cursor"]) == (statement["lines"], None)
    # settlements and notices are found through their own routes
    assert (await found("/amazon-pay/settlements"))["settlements"][0]["settlement_id"] == books.settlement_id
    notices = (await t.get("/dunning/notices", key=key, customer="C-100")).json()["items"]
    assert [n["level"] for n in notices] == [1]


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        ("/customers", {"cursor": "bm9wZQ"}, "cursor_invalid"),
        ("/customers", {"q": "x" * 65}, None),
        ("/customers", {"limit": "0"}, None),
        ("/customers", {"limit": "501"}, None),
        ("/orders", {"status": "lost"}, "query_parameter_invalid"),
        ("/orders", {"from": "2026-12-01", "to": "2026-11-01"}, "query_parameter_invalid"),
        ("/orders", {"from": "yesterday"}, None),
        ("/orders", {"cursor": "W10"}, "cursor_invalid"),
        ("/bank-statements", {"limit": "101"}, None),
        ("/reports/vat-summary", {"from": "2020-01-01", "to": "2026-12-31"}, "query_parameter_invalid"),
        ("/reports/vat-summary", {"from": "2026-01-01"}, None),
        ("/reports/receivables-ageing", {"as_of": "2026-13-01"}, None),
    ],
)
async def test_bad_find_parameters_are_problems(
    tenant: Tenant, path: str, params: dict[str, str], code: str | None
) -> None:
    r = await tenant.get(path, key=tenant.accountant_key, **params)
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    if code:
        assert r.json()["code"] == code
    assert (await tenant.get("/bank-statements/2026-11-27/NOPE", key=tenant.accountant_key)).status_code == 404
    assert (await tenant.get("/bank-statements/27.11.2026/NOPE", key=tenant.accountant_key)).status_code == 400


@pytest.mark.parametrize("path", ["/orders", "/entries", "/bank-statements"])
async def test_a_bad_query_parameter_is_named_as_it_is_sent(tenant: Tenant, path: str) -> None:
    """QA14 #22: `?from=2026-13-01` names the field `from`, not the handler's `from_date`."""
    r = await tenant.get(path, key=tenant.accountant_key, **{"from": "2026-13-01"})
    assert r.status_code == 400, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["from"]
    assert "from_date" not in r.text


async def test_forms_need_the_sessions_csrf_token_and_a_reason(
    app: Litestar, app_client: httpx.AsyncClient, simulator: Simulator
) -> None:
    books = await german_books(app_client, simulator, name="Desk Write GmbH")
    t = books.tenant
    web = await sign_in(app, t.accountant_key)
    page = (await web.get("/ui/1001/reconciliation")).text
    token = csrf_of(page)
    (exception,) = [r["data"]["exception"] for r in rows_of(page, "exceptions")]
    form = {"exception": exception, "action": "resolve", "account": "8400", "reason": "interest from the bank"}

    async def state() -> str:
        items = (await t.get("/reconciliation/exceptions", key=t.accountant_key, state="all")).json()["items"]
        return str(next(e["state"] for e in items if str(e["exception_id"]) == exception))

    # without the token, with another session's token, from another site, or without a reason: nothing changes
    other = await sign_in(app, t.admin_key)
    other_token = csrf_of((await other.get("/ui/1001/reconciliation")).text)
    assert other_token != token
    for data, headers, status in [
        (form, {}, 403),
        ({**form, "csrf": other_token}, {}, 403),
        ({**form, "csrf": token}, {"Origin": "https://evil.example"}, 403),
        ({**form, "csrf": token}, {"Sec-Fetch-Site": "cross-site"}, 403),
        ({**form, "csrf": token, "reason": ""}, {}, 422),
        ({**form, "csrf": token, "exception": "x"}, {}, 422),
    ]:
        r = await web.post("/ui/1001/reconciliation/resolution", data=data, headers=headers)
        assert r.status_code == status, (data, r.text[:300])
        assert await state() == "open"
    r = await web.post("/ui/1001/reconciliation/resolution", data={**form, "csrf": token})
    assert (r.status_code, r.headers["location"]) == (303, "/ui/1001/reconciliation?state=all")
    assert await state() == "resolved"
    resolved = (await t.get("/reconciliation/exceptions", key=t.accountant_key, state="resolved")).json()["items"][0]
    assert resolved["resolution"]["reason"] == "interest from the bank"

    # a correction entry, posted once however often the form is sent, then reversed
    new = (await web.get("/ui/1001/journal/new")).text
    idem = re.search(r'name="idem" value="([^"]+)"', new)
    assert idem
    correction = {"csrf": csrf_of(new), "idem": idem.group(1), "effective_date": "2026-11-20",
                  "description": "=HYPERLINK(\"http://x\")", "reference": "KORR-1", "reason": "wrong account",
                  "account_1": "8400", "debit_1": "10,00", "account_2": "8300", "credit_2": "10,00"}  # fmt: skip
    assert (
        await web.post("/ui/1001/journal", data={k: v for k, v in correction.items() if k != "csrf"})
    ).status_code == 403
    assert (await web.post("/ui/1001/journal", data={**correction, "debit_1": "10,001"})).status_code == 422
    first = await web.post("/ui/1001/journal", data=correction)
    again = await web.post("/ui/1001/journal", data=correction)
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    entry_id = int(first.headers["location"].rsplit("/", 1)[1])
    entry = (await t.get(f"/entries/{entry_id}", key=t.accountant_key)).json()
    assert entry["metadata"]["reason"] == "wrong account"
    assert entry["reference"] == "KORR-1"
    assert [(x["account"], x["debit"], x["credit"]) for x in entry["lines"]] == [("8400", "10.00", None),
                                                                                 ("8300", None, "10.00")]  # fmt: skip
    # the journal's CSV keeps the formula-like description as text
    body = (await web.get("/ui/1001/journal", params={"format": "csv", "table": "journal"})).content.decode("utf-8-sig")
    assert "'=HYPERLINK" in body
    assert ';"=HYPERLINK' not in body
    detail = (await web.get(f"/ui/1001/journal/{entry_id}")).text
    assert 'id="reverse-form"' in detail
    no_reason = await web.post(f"/ui/1001/journal/{entry_id}/reversal", data={"csrf": csrf_of(detail), "reason": ""})
    assert no_reason.status_code == 422
    reversed_ = await web.post(f"/ui/1001/journal/{entry_id}/reversal", data={"csrf": csrf_of(detail),
                                                                              "reason": "posted twice"})  # fmt: skip
    assert reversed_.status_code == 303
    mirror = (await t.get(f"/entries/{entry_id}", key=t.accountant_key)).json()["reversed_by"]
    assert reversed_.headers["location"] == f"/ui/1001/journal/{mirror}"
    assert "posted twice" in (await t.get(f"/entries/{mirror}", key=t.accountant_key)).json()["description"]

    # closing October with a reason that the periods page shows
    periods = (await web.get("/ui/1001/periods")).text
    assert '<option value="2026-10">' in periods
    closed = await web.post("/ui/1001/periods/close", data={"csrf": csrf_of(periods), "period": "2026-10",
                                                            "reason": "VAT return filed"})  # fmt: skip
    assert closed.status_code == 303
    listed = (await t.get("/periods", key=t.accountant_key)).json()
    assert listed[-1]["period"] == "2026-10"
    assert "VAT return filed" in listed[-1]["closed_by"]
    assert "VAT return filed" in (await web.get("/ui/1001/periods")).text
    # everything the forms did is on the audit trail, as the signed-in accountant's key, with its reason
    key_id = int(t.accountant_key.split("_")[2])
    actions = (await t.get("/audit", key=t.accountant_key)).json()["items"]
    assert {(a["action"], a["reason"], a["by"]["key_id"]) for a in actions} >= {
        ("exception.resolved", "interest from the bank", key_id), ("entry.reversed", "posted twice", key_id),
        ("period.closed", "VAT return filed", key_id)}  # fmt: skip
    assert entry["posted_by"]["key_id"] == key_id
    await web.aclose()
    await other.aclose()


def test_the_compiled_catalogue_is_the_po_file() -> None:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    po = LOCALE_DIR / "de" / "LC_MESSAGES" / "kontor.po"
    with po.open("rb") as f:
        catalog = read_po(f)
    assert not [m.id for m in catalog if m.id and not m.string], "untranslated labels"
    out = io.BytesIO()
    write_mo(out, catalog)
    assert out.getvalue() == (po.with_suffix(".mo")).read_bytes(), "run: pybabel compile -d desk/locale -D kontor"


def test_csv_amounts_follow_the_language() -> None:
    from desk.sheets import Column, Dialect, Sheet, sheet_file

    sheet = Sheet("t", "", [Column("Text"), Column("Amount", "amount")])
    sheet.add("=1+1", "-1234.50")
    german = sheet_file(sheet, "csv", Dialect.of("de"), "t").body.decode("utf-8-sig")
    english = sheet_file(sheet, "csv", Dialect.of("en"), "t").body.decode("utf-8-sig")
    assert german == "Text;Amount\r\n'=1+1;-1234,50\r\n"
    assert english == "Text,Amount\r\n'=1+1,-1234.50\r\n"
    book = openpyxl.load_workbook(io.BytesIO(sheet_file(sheet, "xlsx", Dialect.of("de"), "t").body)).active
    assert book is not None
    assert (book["A2"].value, book["B2"].value) == ("=1+1", -1234.5)  # text stays text; a number


async def test_the_ageing_lists_customers_in_credit_as_the_balance_sheet_does(app: Litestar, tenant: Tenant) -> None:
    """QA14 #12: a customer whose whole balance is credit (paid before or beyond any claim) is a row with its credit,
    and the totals' credit is the balance sheet's customer credit balances, for as many customers."""
    t = tenant
    await t.sale("C-1", "119.00", "100.00", "19.00", date="2026-10-01")
    for customer, amount in (("C-8", "50.00"), ("C-9", "187.53")):
        paid = await t.post_entry([{"account": "1200", "debit": amount},
                                   {"account": "1400", "customer": customer, "credit": amount}], date="2026-11-02")  # fmt: skip
        assert paid.status_code == 201, paid.text
    ageing = (await t.get("/reports/receivables-ageing", as_of="2026-11-20")).json()
    assert [(r["customer"], r["credit"], r["total"]) for r in ageing["rows"]] == [
        ("C-1", "0.00", "119.00"),
        ("C-8", "50.00", "-50.00"),
        ("C-9", "187.53", "-187.53"),
    ]
    assert (ageing["customers"], ageing["totals"]["credit"], ageing["totals"]["total"]) == (3, "237.53", "-118.53")
    sheet = (await t.get("/reports/balance-sheet", as_of="2026-11-20")).json()
    (prepaid,) = [x for x in sheet["liabilities"] if x.get("portion") == "credit_balances"]
    assert (prepaid["amount"], prepaid["customers"]) == ("237.53", 2)
    web = await sign_in(app, t.accountant_key)
    html = (await web.get("/ui/1001/ageing", params={"as_of": "2026-11-20"})).text
    await web.aclose()
    assert [r["data"]["customer"] for r in rows_of(html, "ageing")] == ["C-1", "C-8", "C-9"]


# --- QA14: amounts in the page's locale, ids, error pages, labels, customers ---------------------------------
async def _correction(web: httpx.AsyncClient, code: int, lines: dict[str, str]) -> httpx.Response:
    new = (await web.get(f"/ui/{code}/journal/new")).text
    idem = re.search(r'name="idem" value="([^"]+)"', new)
    assert idem
    form = {"csrf": csrf_of(new), "idem": idem.group(1), "effective_date": "2026-11-20", "reason": "QA14", **lines}
    return await web.post(f"/ui/{code}/journal", data=form)


async def test_a_german_form_reads_amounts_as_german_pages_write_them(app: Litestar, tenant: Tenant) -> None:
    web = await sign_in(app, tenant.accountant_key)

    async def booked(lines: dict[str, str]) -> list[tuple[str, str | None, str | None]]:
        r = await _correction(web, 1001, lines)
        assert r.status_code == 303, r.text[:500]
        entry = await tenant.get(f"/entries/{r.headers['location'].rsplit('/', 1)[1]}", key=tenant.accountant_key)
        return [(x["account"], x["debit"], x["credit"]) for x in entry.json()["lines"]]

    assert await booked({"account_1": "4970", "debit_1": "1.500", "account_2": "1200", "credit_2": "1.500"}) == [
        ("4970", "1500.00", None), ("1200", None, "1500.00")]  # fmt: skip
    assert await booked({"account_1": "4970", "debit_1": "1.000,50", "account_2": "1200", "credit_2": "1000,5"}) == [
        ("4970", "1000.50", None), ("1200", None, "1000.50")]  # fmt: skip
    before = len((await tenant.get("/entries", key=tenant.accountant_key)).json()["items"])
    for typed, words in [("1.50", "nicht eindeutig"), ("1,500", "mehr als 2 Nachkommastellen"), ("10.00", "eindeutig"),
                         ("1.000.50", "eindeutig"), ("12 EUR", "kein Betrag"), ("-5", "Vorzeichen")]:  # fmt: skip
        r = await _correction(
            web, 1001, {"account_1": "4970", "debit_1": typed, "account_2": "1200", "credit_2": "1,50"}
        )
        assert r.status_code == 422, typed
        assert r.headers["content-type"].startswith("text/html"), typed
        assert '<html lang="de">' in r.text
        message = re.search(r'id="error-message">([^<]*)<', r.text)
        assert message, r.text[:300]
        assert f"Zeile 1, Soll: „{typed}“" in html.unescape(message.group(1)), message.group(1)
        assert words in html.unescape(message.group(1)), message.group(1)
        assert "1.234,56" in message.group(1) or typed == "-5"
    unbalanced = await _correction(web, 1001, {"account_1": "4970", "debit_1": "1.500", "account_2": "1200",
                                               "credit_2": "1.500,01"})  # fmt: skip
    assert unbalanced.status_code == 422
    assert "Soll (1.500,00) und Haben (1.500,01) weichen ab" in html.unescape(unbalanced.text)
    customer = await _correction(web, 1001, {"account_1": "4970", "debit_1": "5,00", "customer_1": "C-1",
                                             "account_2": "1200", "credit_2": "5,00"})  # fmt: skip
    assert customer.status_code == 422
    text = html.unescape(customer.text)
    assert "Ein Kunde gehört auf Zeilen des Forderungskontos" in text, text[text.find("<main>") :]
    assert "<li>Zeile 1, Kunde: " in text, text[text.find("<main>") :]
    assert len((await tenant.get("/entries", key=tenant.accountant_key)).json()["items"]) == before  # nothing booked
    await web.aclose()


async def test_a_french_form_reads_french_amounts(app: Litestar, french: Tenant) -> None:
    web = await sign_in(app, french.accountant_key)
    r = await _correction(web, 3003, {"account_1": "4970", "debit_1": "1 500,25", "account_2": "1200",
                                      "credit_2": "1\u202f500,25"})  # fmt: skip
    assert r.status_code == 303, r.text[:500]
    entry = (await french.get(f"/entries/{r.headers['location'].rsplit('/', 1)[1]}", key=french.accountant_key)).json()
    assert [x["debit"] or x["credit"] for x in entry["lines"]] == ["1500.25", "1500.25"]
    refused = await _correction(web, 3003, {"account_1": "4970", "debit_1": "1.500", "account_2": "1200",
                                            "credit_2": "1,500"})  # fmt: skip
    assert refused.status_code == 422
    assert '<html lang="en">' in refused.text
    assert "Line 1, debit: “1.500”" in html.unescape(refused.text)
    await web.aclose()


BAD_IDS = ["99999999999999999999", "9223372036854775808", "0", "-1", "abc", "1e3", "%20", "１"]


async def test_every_page_id_is_range_checked(app: Litestar, web: httpx.AsyncClient, books: Books) -> None:
    """Every /ui route with a parameter in its path, found in the app's routes (so a new one is covered too), and
    every integer query parameter: never a 500, an HTML error page in German."""
    routes = sorted(
        (route.path, method)
        for route in app.routes
        if route.path.startswith("/ui/") and "{" in route.path.replace("{code:int}", "")
        for method in getattr(route, "route_handler_map", {})
        if method in ("GET", "POST")
    )
    assert len(routes) >= 10, routes
    assert ("/ui/{code:int}/dunning/notices/{notice:str}/letter.pdf", "GET") in routes
    csrf = csrf_of((await web.get("/ui/1001/journal/new")).text)
    tried = 0
    for path, method in routes:
        for bad in BAD_IDS:
            url = re.sub(r"\{(?!code)[a-z_]+:[a-z]+\}", bad, path).replace("{code:int}", "1001")
            r = await (web.get(url) if method == "GET" else web.post(url, data={"csrf": csrf, "reason": "x"}))
            # a customer number is text: one never booked has an empty account (200); every other id is checked
            # (a month that is not YYYY-MM is 422 `period_invalid`, ledger.problem_codes)
            allowed = (200, 400, 404) if "{customer:str}" in path else (400, 404, 422)
            assert r.status_code in allowed, (method, url, r.status_code, r.text[:300])
            assert r.headers["content-type"].startswith("text/html"), (method, url)
            assert '<html lang="de">' in r.text, (method, url)
            tried += 1
    for page, name in [("dunning/notices", "after"), ("reconciliation", "after"), ("vat", "year"),
                       ("settlements", "year"), ("customers", "min_level")]:  # fmt: skip
        for bad in ["99999999999999999999", "-1", "abc"]:
            r = await web.get(f"/ui/1001/{page}", params={name: bad})
            assert r.status_code == 400, (page, name, bad, r.status_code)
            assert '<html lang="de">' in r.text
            tried += 1
    for bad in ["99999999999999999999", "0", "abc"]:  # the business code itself
        r = await web.get(f"/ui/{bad}/journal")
        assert r.status_code in (400, 404), bad
        assert r.headers["content-type"].startswith("text/html"), bad
    assert tried > 100


async def test_error_pages_are_html_in_the_pages_language(app: Litestar, web: httpx.AsyncClient, books: Books) -> None:
    for url, status, title, words in [
        ("/ui/1001/journal/abc", 404, "Nicht gefunden", "Diese Buchung gibt es in diesem Buchungskreis nicht."),
        ("/ui/1001/journal/99999999", 404, "Nicht gefunden", "Diese Buchung gibt es in diesem Buchungskreis nicht."),
        ("/ui/1001/", 404, "Nicht gefunden", "Diese Seite gibt es nicht."),
        ("/ui/1001/nothing/here", 404, "Nicht gefunden", "Diese Seite gibt es nicht."),
        ("/ui/1001/journal?from=2026-13-01", 400, "Ungültige Anfrage", "Von: „2026-13-01“ ist ungültig"),
        ("/ui/1001/ageing?as_of=gestern", 400, "Ungültige Anfrage", "Stichtag: „gestern“ ist ungültig"),
        ("/ui/1001/income-statement?from=2026-12-01&to=2026-11-01", 400, "Ungültige Anfrage",
         "Von (01.12.2026) liegt nach Bis (01.11.2026)."),
        ("/ui/1001/reconciliation?state=lost", 400, "Ungültige Anfrage", "Status: „lost“ ist keiner von"),
        ("/ui/1001/periods/2026-1", 422, "Nicht ausführbar", "„2026-1“ ist kein Monat"),
        ("/ui/1001/dunning/notices/999999/letter.pdf", 404, "Nicht gefunden", "Diese Mahnung gibt es"),
        ("/ui/1001/orders/nope", 404, "Nicht gefunden", "Diese Bestellung gibt es"),
        ("/ui/1001/journal?cursor=bm9wZQ", 400, "Ungültige Anfrage", "Dieser Seitenlink stammt nicht von Kontor"),
    ]:  # fmt: skip
        r = await web.get(url)
        assert r.status_code == status, (url, r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("text/html"), (url, r.text[:200])
        text = html.unescape(r.text)
        assert '<html lang="de">' in text, url
        assert f'id="error-title">{title} ' in text, (url, text[text.find("<h1") :][:200])
        assert words in text, (url, text[text.find("<main>") :][:600])
        assert not any(english in text for english in ("Error ", "Back to your", "Validation failed", "not found")), url
        assert "Zurück zu Ihren Buchungskreisen" in text
    # a form without a reason, or without its token: the German page says so
    page = (await web.get("/ui/1001/periods")).text
    r = await web.post("/ui/1001/periods/close", data={"csrf": csrf_of(page), "period": "2026-10", "reason": ""})
    assert r.status_code == 422
    assert "Geben Sie einen Grund an" in html.unescape(r.text)
    r = await web.post("/ui/1001/periods/close", data={"csrf": "0" * 64, "period": "2026-10", "reason": "x"})
    assert r.status_code == 403
    assert "Dieses Formular ist abgelaufen" in html.unescape(r.text)
    # not signed in, a browser that prefers German gets German; the API keeps its JSON problems
    anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kontor.test")
    r = await anonymous.get("/ui/1001/", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.8"})
    assert (r.status_code, '<html lang="de">' in r.text) == (404, True)
    r = await anonymous.get("/ui/nothing", headers={"Accept-Language": "en-GB"})
    assert (r.status_code, '<html lang="en">' in r.text) == (404, True)
    api = await anonymous.get("/v1/nothing")
    assert api.headers["content-type"].startswith("application/problem+json")
    await anonymous.aclose()


async def test_german_labels_of_kinds_matches_reversals_levels_and_runs(web: httpx.AsyncClient, books: Books) -> None:
    Language.missing = set()
    try:
        reconciliation = html.unescape((await web.get("/ui/1001/reconciliation", params={"state": "all"})).text)
        assert 'data-kind="unmatched_credit"' in reconciliation
        assert ">Eingang ohne Zuordnung<" in reconciliation
        assert ">unmatched_credit<" not in reconciliation
        statement = (await web.get("/ui/1001/bank-statements")).text
        link = re.search(r'href="/ui/1001/(bank-statements/[^"]+)"', statement)
        assert link
        lines = html.unescape((await web.get(f"/ui/1001/{link.group(1).replace('&amp;', '&')}")).text)
        assert f">Abrechnung {books.settlement_id}<" in lines
        assert ">settlement " not in lines
        assert ">Eingang ohne Zuordnung<" in lines
        journal = (await web.get("/ui/1001/journal")).text
        assert '<th class="num" scope="col">Storno zu</th>' in journal
        assert ">Storniert<" not in journal
        dunning = html.unescape((await web.get("/ui/1001/dunning")).text)
        levels = rows_of(dunning, "levels")
        assert len(levels) >= 2
        assert re.search(r">1 Tag nach Fälligkeit<|>\d+ Tage nach Fälligkeit<", levels[0]["html"]), levels[0]["html"]
        assert all("nach der vorigen Mahnung" in x["html"] for x in levels[1:]), [x["html"] for x in levels]
        runs = rows_of(dunning, "runs")
        assert re.search(r"\d+ Kunden? geprüft", runs[0]["html"]), runs[0]["html"]
        assert re.search(r"\d+ Mahnung(en)? erstellt", runs[0]["html"]), runs[0]["html"]
        ageing = html.unescape((await web.get("/ui/1001/ageing")).text)
        owing = len([r for r in rows_of(ageing, "ageing") if not r["amounts"][-1].startswith("-")])
        assert f'id="owing">{owing} Kunden schulden etwas.<' in ageing
        later = html.unescape((await web.get("/ui/1001/ageing", params={"as_of": "2026-07-21"})).text)
        assert 'id="owing">1 Kunde schuldet etwas.<' in later  # C-0's sale of 2026-07-20 only
        assert Language.missing == set(), "labels without a German translation"
    finally:
        Language.missing = None


async def test_the_sign_in_page_says_what_the_pages_do(app: Litestar) -> None:
    anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kontor.test")
    page = (await anonymous.get("/ui/sign-in")).text
    assert "only read" not in page
    assert "nothing is booked" not in page
    assert "post corrections" in page
    await anonymous.aclose()


async def test_a_customer_page_links_only_orders_that_exist(
    app: Litestar, tenant: Tenant, web: httpx.AsyncClient, books: Books
) -> None:
    # C-3 was invoiced by a posted entry with reference R-900 (no order): shown, not linked as an order
    await tenant.sale("C-3", "119.00", "100.00", "19.00", reference="R-900", date="2026-10-01")
    mine = await sign_in(app, tenant.accountant_key)
    page = (await mine.get("/ui/1001/customers/C-3")).text
    (item,) = rows_of(page, "open-items")
    assert ">R-900<" in item["html"]
    assert "/orders/" not in item["html"]
    await mine.aclose()
    # C-100's item is Amazon Pay order wd-1: linked, and the link opens the order
    page = (await web.get("/ui/1001/customers/C-100")).text
    (item,) = rows_of(page, "open-items")
    assert 'href="/ui/1001/orders/wd-1"' in item["html"]
    assert (await web.get("/ui/1001/orders/wd-1")).status_code == 200


async def test_customers_as_of_today_sorted_filtered_and_without_a_level_once_settled(
    app: Litestar, app_client: httpx.AsyncClient, simulator: Simulator, clock: Any
) -> None:
    books = await german_books(app_client, simulator, name="Desk Customers GmbH")
    t = books.tenant
    key = t.accountant_key
    today = clock.now.date()
    later = today + timedelta(days=2)
    await t.sale("C-2", "100.00", "84.03", "15.97", date=later.isoformat())  # booked ahead of today

    async def listed(**params: Any) -> list[dict[str, Any]]:
        r = await t.get("/customers", key=key, **params)
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    everyone = await listed()
    c2 = next(c for c in everyone if c["customer"] == "C-2")
    assert (c2["balance"], c2["side"]) == ("35.70", "DEBIT")  # today, like the customer's account: not the 100.00
    account = (await t.get("/customers/C-2/account", key=key, as_of=today.isoformat())).json()
    assert account["balance"] == "35.70", account  # the customer's page shows the account as of today
    assert 'id="balance">35,70 S<' in (await (await sign_in(app, key)).get("/ui/1001/customers/C-2")).text
    ahead = next(c for c in await listed(as_of=later.isoformat()) if c["customer"] == "C-2")
    assert ahead["balance"] == "135.70"
    web = await sign_in(app, key)
    page = rows_of((await web.get("/ui/1001/customers")).text, "customers")
    assert [(r["data"]["customer"], r["amounts"][0]) for r in page] == [
        (c["customer"], c["balance"] if c["side"] != "CREDIT" else f"-{c['balance']}") for c in everyone]  # fmt: skip

    # sorted and filtered, the same rows in another order; followed page by page
    def signed(c: dict[str, Any]) -> Decimal:
        return Decimal(c["balance"]) * (-1 if c["side"] == "CREDIT" else 1)

    orders = {
        "balance": sorted(everyone, key=lambda c: (-signed(c), c["customer"])),
        "oldest_due": sorted(everyone, key=lambda c: (c["oldest_due"] or "9999-12-31", c["customer"])),
        "dunning_level": sorted(everyone, key=lambda c: (-c["dunning_level"], c["customer"])),
    }
    assert orders["balance"][0]["customer"] == books.dunned
    for sort, expected in orders.items():
        assert [c["customer"] for c in await listed(sort=sort)] == [c["customer"] for c in expected], sort
        seen, cursor = [], None
        while True:
            r = await t.get("/customers", key=key, sort=sort, limit="2", **({"cursor": cursor} if cursor else {}))
            seen += [c["customer"] for c in r.json()["items"]]
            cursor = r.json()["next_cursor"]
            if not cursor:
                break
        assert seen == [c["customer"] for c in expected], sort
        shown = rows_of((await web.get("/ui/1001/customers", params={"sort": sort})).text, "customers")
        assert [r["data"]["customer"] for r in shown] == [c["customer"] for c in expected], sort
    assert [c["customer"] for c in await listed(side="DEBIT")] == [
        c["customer"] for c in everyone if c["side"] == "DEBIT"]  # fmt: skip
    assert [c["customer"] for c in await listed(overdue="true")] == [
        c["customer"] for c in everyone if c["oldest_due"] and c["oldest_due"] < today.isoformat()]  # fmt: skip
    dunned_ones = [c["customer"] for c in everyone if c["dunning_level"] >= 1]
    assert books.dunned in dunned_ones
    assert len(dunned_ones) < len(everyone)
    assert [c["customer"] for c in await listed(min_level="1")] == dunned_ones
    shown = rows_of((await web.get("/ui/1001/customers", params={"min_level": "1", "overdue": "1"})).text, "customers")
    overdue_ones = [c["customer"] for c in everyone if c["oldest_due"] and c["oldest_due"] < today.isoformat()]
    assert [r["data"]["customer"] for r in shown] == [c for c in dunned_ones if c in overdue_ones]
    assert books.dunned not in overdue_ones  # C-100 falls due today: dunned, not overdue
    first = (await t.get("/customers", key=key, limit="1")).json()["next_cursor"]
    for params, code in [({"sort": "name"}, None), ({"side": "OWES"}, None), ({"min_level": "-1"}, None),
                         ({"overdue": "maybe"}, None), ({"sort": "balance", "cursor": first}, "cursor_invalid")]:  # fmt: skip
        r = await t.get("/customers", key=key, **params)
        assert r.status_code == 400, (params, r.text)
        if code:
            assert r.json()["code"] == code
    empty = await web.get("/ui/1001/customers", params={"q": "", "side": "", "min_level": "", "sort": "customer"})
    assert [r["data"]["customer"] for r in rows_of(empty.text, "customers")] == [c["customer"] for c in everyone]
    for params in [{"sort": "name"}, {"side": "OWES"}, {"min_level": "x"}]:
        r = await web.get("/ui/1001/customers", params=params)
        assert (r.status_code, '<html lang="de">' in r.text) == (400, True), params

    # the dunned customer pays everything: no dunning level any more, in the list and on the customer's page
    dunned = next(c for c in everyone if c["customer"] == books.dunned)
    assert dunned["dunning_level"] == 1
    owed = (await t.get(f"/customers/{books.dunned}/account", key=key, as_of=today.isoformat())).json()["balance"]
    paid = await t.post_entry([{"account": "1200", "debit": owed},
                               {"account": "1400", "customer": books.dunned, "credit": owed}], date=today.isoformat())  # fmt: skip
    assert paid.status_code == 201, paid.text
    settled = next(c for c in await listed() if c["customer"] == books.dunned)
    assert (settled["side"], settled["dunning_level"]) == ("BALANCED", 0)
    assert 'id="level">0<' in (await web.get(f"/ui/1001/customers/{books.dunned}")).text
    assert books.dunned not in [c["customer"] for c in await listed(min_level="1")]
    await web.aclose()

"""The accountant's pages and the find API on books with real activity (tests/e2e/desk_books.py): every page
renders script-free in the business code's language, every table downloads as CSV and XLSX, the figures are the
API's, and the forms change the books only with the session's CSRF token and a reason."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
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
                  "account_1": "8400", "debit_1": "10,00", "account_2": "8300", "credit_2": "10.00"}  # fmt: skip
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

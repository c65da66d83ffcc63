"""Books with real activity for the web page and find tests: Amazon Pay orders (invoiced, returned, goodwill, one
charged back and dunned), direct sales of other customers, a settlement with its payout, a bank statement
that clears the payout and carries a line nobody can match, and a dunning run."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
from litestar import Litestar

from tests.conftest import Simulator, Tenant, make_tenant
from tests.e2e.amazon import Shop, item, make_shop
from tests.e2e.test_business_profile import PROFILE
from tests.e2e.test_dunning import charged_back_order, day, put_policy, run
from tests.e2e.test_dunning_letters import BILL_TO
from tests.e2e.test_reconciliation import camt053, settlement_report, upload_settlement, upload_statement


@dataclass
class Books:
    tenant: Tenant
    shop: Shop
    dunned: str  # the customer in dunning (charged back, at level 1)
    settlement_id: str
    statement_id: str


async def german_books(client: httpx.AsyncClient, simulator: Simulator, name: str = "Desk GmbH") -> Books:
    t = await make_tenant(client, name=name)
    profile = await client.put(t.url("/profile"), json=PROFILE, headers=t.headers())
    assert profile.status_code == 200, profile.text
    shop = await make_shop(t, simulator, reserve_percent=10)
    # the dunned customer: invoiced on day 0, charged back, dispute lost; at level 1 after the run on day 41
    await charged_back_order(shop, "wd-1", [item(1, "119.00")], "119.00", bill_to=BILL_TO)  # fmt: skip
    # a paid order of another customer, partly returned, with goodwill at 7 %
    other = Shop(tenant=t, sim=simulator, merchant_id=shop.merchant_id, public_key_id=shop.public_key_id,
                 customer="K-2040")  # fmt: skip
    r = await other.create_order(
        "wd-2", [item(1, "59.50"), item(2, "21.40", vat="7")], order_date=day(30),
        bill_to={"first_name": "Jürgen", "last_name": "Özdemir", "company": "Özdemir Handel KG", "country_code": "DE"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert (await other.invoice("wd-2", "RE-2026-0042", [1, 2], invoice_date=day(30))).status_code == 201
    ret = await other.document("wd-2", "returns", {"return_reference": "RT-2026-0007", "return_date": day(35),
                               "invoice_reference": "RE-2026-0042", "reason": "CUSTOMER_RETURN",
                               "items": [{"item_reference": 1, "quantity": 1}]})  # fmt: skip
    assert ret.status_code == 201, ret.text
    good = await other.document("wd-2", "goodwills", {"goodwill_reference": "GS-2026-0003", "goodwill_date": day(36),
                                "reason": "DELIVERY_DELAYED", "gross_amount": "5.35"})  # fmt: skip
    assert good.status_code == 201, good.text
    # customers without orders (sales posted by another system), overdue by different times
    for n, (customer, on) in enumerate([("C-0", "2026-07-20"), ("C-1", "2026-09-10"), ("C-2", "2026-10-20")]):
        await t.sale(customer, f"{11.90 * (n + 1):.2f}", f"{10 * (n + 1):.2f}", f"{1.90 * (n + 1):.2f}", date=on)
    await put_policy(shop)
    assert (await run(shop, 41))["counts"]["notice"] >= 1
    # Amazon settles: a payout (and the reserve); the bank shows the payout and a line nobody knows
    s = await upload_settlement(shop, await settlement_report(shop))
    assert s.status_code == 201, s.text
    settlement = s.json()
    transfer = settlement["totals"].get("Transfer", "0.00")
    lines = [("12.34", "CRDT", "no idea who this is")]
    if transfer.startswith("-"):
        lines.insert(0, (transfer[1:], "CRDT", settlement["settlement_id"]))
    statement = await upload_statement(shop, camt053("WD-ST-1", lines))
    assert statement.status_code == 201, statement.text
    return Books(tenant=t, shop=shop, dunned=shop.customer, settlement_id=settlement["settlement_id"],
                 statement_id="WD-ST-1")  # fmt: skip


async def french_books(client: httpx.AsyncClient) -> Tenant:
    t = await make_tenant(client, businesses=[{"code": 3003, "country": "FR", "currency": "EUR"}], name="Boutique SARL")
    for customer, gross, net, vat, on in [("F-1", "1200.00", "1000.00", "200.00", "2026-10-05"),
                                          ("F-2", "60.00", "50.00", "10.00", "2026-11-02")]:  # fmt: skip
        await t.sale(customer, gross, net, vat, date=on)
    return t


async def sign_in(app: Litestar, key: str) -> httpx.AsyncClient:
    """A browser-like client of its own (its own cookie jar), signed in with `key`."""
    web = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kontor.test")
    r = await web.post("/ui/sign-in", data={"key": key, "next": "/ui/"})
    assert r.status_code == 303, r.text
    return web


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def downloads(html: str) -> list[tuple[str, str]]:
    """(table id, format) of every download link of a page."""
    return re.findall(r'class="download" data-table="([^"]+)" data-format="([a-z]+)"', html)


def rows_of(html: str, table: str) -> list[dict[str, Any]]:
    """The rows of a table's body: their data-* attributes and the data-amount of their cells."""
    body = re.search(rf'<table id="{re.escape(table)}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body, f"no table {table}"
    out = []
    for tr in re.finditer(r"<tr([^>]*)>(.*?)</tr>", body.group(1), re.S):
        data = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', tr.group(1)))
        amounts = re.findall(r'data-amount="([^"]*)"', tr.group(2))
        if data:
            out.append({"data": data, "amounts": amounts, "html": tr.group(2)})
    return out

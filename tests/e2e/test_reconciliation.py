"""Settlement reports and bank statements over HTTP: fees, reserves, payouts, chargebacks; matching and exceptions.

The settlement reports come from the simulator (its fees: 1.9 % half-up + 0.35 per capture, 15.00 per
chargeback; reserve: 5 % of the period's captures, the previous reserve released) or are written by hand
for the rows the simulator never produces (unknown transactions, mismatches, adjustments).
"""

from __future__ import annotations

import asyncio
import csv
import io
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import Simulator, Tenant
from tests.e2e.amazon import Shop, eventually, item, make_shop, paid_order
from tests.e2e.test_datev import GEGEN, KONTO, SETTINGS, read_datev

CSV = {"Content-Type": "text/csv"}
XML = {"Content-Type": "application/xml"}


@pytest.fixture
async def shop(tenant: Tenant, simulator: Simulator) -> Shop:
    return await make_shop(tenant, simulator)


async def settlement_report(shop: Shop) -> str:
    await shop.drain_ipns()
    return await shop.settlement_report()


async def upload_settlement(shop: Shop, report: str | bytes) -> httpx.Response:
    t = shop.tenant
    body = report.encode() if isinstance(report, str) else report
    return await t.client.post(t.url("/amazon-pay/settlements"), content=body, headers=t.headers(t.poster_key) | CSV)


async def upload_statement(shop: Shop, xml: str, **params: str) -> httpx.Response:
    t = shop.tenant
    return await t.client.post(
        t.url("/bank-statements"), content=xml.encode(), params=params, headers=t.headers(t.poster_key) | XML
    )


async def exceptions(shop: Shop, **params: str) -> list[dict[str, Any]]:
    r = await shop.tenant.get("/reconciliation/exceptions", **params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def resolve(shop: Shop, exception_id: int, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    t = shop.tenant
    return await t.client.post(
        t.url(f"/reconciliation/exceptions/{exception_id}/resolution"),
        json=body,
        headers=t.headers(key or t.poster_key),
    )


def hand_report(seller_id: str, settlement_id: str, rows: list[tuple[str, str, str, str, str, str]]) -> str:
    """A settlement file in Amazon's layout; rows: (type, transaction id, seller ref, order ref, amount, fee)."""
    out = io.StringIO()
    out.write('"Amazon Payments Advanced",\n"Settlement Report",\n')
    out.write(f'"SellerId","{seller_id}"\n')
    out.write('"SettlementStartDate","2026-11-20T00:00:00 +0000"\n"SettlementEndDate","2026-11-27T00:00:00 +0000"\n')
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator=",\n")
    writer.writerow(
        [
            "TransactionPostedDate",
            "SettlementId",
            "AmazonTransactionId",
            "SellerReferenceId",
            "TransactionType",
            "AmazonOrderReferenceId",
            "SellerOrderId",
            "StoreName",
            "CurrencyCode",
            "TransactionDescription",
            "TransactionAmount",
            "TransactionPercentageFee",
            "TransactionFixedFee",
            "TotalTransactionFee",
            "NetTransactionAmount",
        ]
    )
    for kind, txid, seller_ref, order_ref, amount, fee in rows:
        net = str(Decimal(amount) + Decimal(fee))
        head = ["2026-11-26T10:00:00 +0000", settlement_id, txid, seller_ref, kind, order_ref, "", "", "EUR", ""]
        writer.writerow([*head, amount, fee, "0.00", fee, net])
    return out.getvalue()


def camt053(statement_id: str, entries: list[tuple[str, str, str]], currency: str = "EUR") -> str:
    """A CAMT.053.001.02 statement; entries: (amount, CRDT or DBIT, remittance text)."""
    ntry = "".join(
        f"""<Ntry><NtryRef>{n}</NtryRef><Amt Ccy="{currency}">{amount}</Amt><CdtDbtInd>{indicator}</CdtDbtInd>
        <Sts>BOOK</Sts><BookgDt><Dt>2026-11-27</Dt></BookgDt><ValDt><Dt>2026-11-27</Dt></ValDt>
        <AcctSvcrRef>BANKREF-{statement_id}-{n}</AcctSvcrRef>
        <NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
        <RltdPties><Dbtr><Nm>Erika Mustermann</Nm></Dbtr></RltdPties>
        <RmtInf><Ustrd>{remittance}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"""
        for n, (amount, indicator, remittance) in enumerate(entries, start=1)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>
<GrpHdr><MsgId>MSG-{statement_id}</MsgId><CreDtTm>2026-11-27T18:00:00</CreDtTm></GrpHdr>
<Stmt><Id>{statement_id}</Id><CreDtTm>2026-11-27T18:00:00</CreDtTm>
<Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>{currency}</Ccy></Acct>{ntry}</Stmt>
</BkToCstmrStmt></Document>"""


async def test_one_step_order_settled_with_fee_reserve_and_payout_cleared_by_the_bank(shop: Shop) -> None:
    assert (await shop.create_order("rc-1", [item(1, "119.00")])).status_code == 201
    assert (await shop.invoice("rc-1", "I-rc-1", [1])).status_code == 201
    report = await settlement_report(shop)
    r = await upload_settlement(shop, report)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["outcomes"] == {"matched": 1, "payout": 1, "reserve": 1}
    assert out["totals"] == {"Capture": "119.00", "Reserve": "-5.95", "Transfer": "-110.44", "fees": "-2.61"}
    assert out["exception_count"] == 0
    assert await shop.balance("4970") == "2.61"  # 1.9 % of 119.00 = 2.261 -> 2.26, + 0.35
    assert await shop.balance("1211") == "5.95"  # reserve held
    assert await shop.balance("1360") == "110.44"  # paid out, in transit
    await shop.assert_books(("BALANCED", "0.00"))
    assert await shop.balance("1210") == "0.00"

    settlement_id = out["settlement_id"]
    again = await upload_settlement(shop, report)
    assert (again.status_code, again.headers.get("Idempotent-Replayed"), again.json()) == (201, "true", out)
    other = await upload_settlement(shop, report.replace("Current Reserve Amount", "Current Reserve (edited)"))
    assert (other.status_code, other.json()["code"]) == (409, "settlement_conflict")
    assert (await shop.tenant.get(f"/amazon-pay/settlements/{settlement_id}")).json() == out

    statement = camt053("ST-rc-1", [("110.44", "CRDT", f"AMAZON PAYMENTS EUROPE SCA {settlement_id}")])
    cleared = await upload_statement(shop, statement)
    assert cleared.status_code == 201, cleared.text
    assert [(line["outcome"], line["match"]) for line in cleared.json()["lines"]] == [
        ("payout_cleared", f"settlement {settlement_id}")
    ]
    assert await shop.balance("1360") == "0.00"
    assert await shop.balance("1200") == "110.44"
    replay = await upload_statement(shop, statement)
    assert (replay.status_code, replay.headers["Idempotent-Replayed"], replay.json()) == (201, "true", cleared.json())
    changed = await upload_statement(shop, statement.replace("110.44", "110.45"))
    assert (changed.status_code, changed.json()["code"]) == (409, "statement_conflict")
    await shop.assert_books(("BALANCED", "0.00"))


async def test_the_same_files_uploaded_concurrently_are_imported_once(shop: Shop) -> None:
    await paid_order(shop, "rc-6")
    report = await settlement_report(shop)
    first, second = await asyncio.gather(upload_settlement(shop, report), upload_settlement(shop, report))
    assert (first.status_code, second.status_code) == (201, 201)
    assert sorted(str(r.headers.get("Idempotent-Replayed")) for r in (first, second)) == ["None", "true"]
    assert first.json() == second.json()
    statement = camt053("ST-rc-6", [("1.00", "CRDT", "unknown")])
    a, b = await asyncio.gather(upload_statement(shop, statement), upload_statement(shop, statement))
    assert (a.status_code, b.status_code) == (201, 201)
    assert sorted(str(r.headers.get("Idempotent-Replayed")) for r in (a, b)) == ["None", "true"]
    assert len(await exceptions(shop, source="bank")) == 1
    await shop.assert_books(("BALANCED", "0.00"))


async def test_chargeback_reported_by_ipn_and_settlement_is_booked_once(shop: Shop, pool: asyncpg.Pool) -> None:
    await paid_order(shop, "rc-2")
    await shop.chargeback("rc-2", "60.00")

    async def booked() -> None:
        assert await shop.customer_state() == ("DEBIT", "60.00")

    await eventually(booked)
    r = await upload_settlement(shop, await settlement_report(shop))
    assert r.status_code == 201, r.text
    assert r.json()["outcomes"] == {"matched": 2, "payout": 1, "reserve": 1}  # capture, chargeback; a repayment
    assert r.json()["totals"]["fees"] == "-16.49"  # 1.14 + 0.35 on the capture, 15.00 for the chargeback
    assert await pool.fetchval("SELECT count(*) FROM chargebacks WHERE merchant_id = $1", shop.tenant.merchant_id) == 1
    await shop.assert_books(("DEBIT", "60.00"))
    # fees and reserve exceeded the takings: Amazon collects 19.49 from the merchant's bank (balance repayment)
    assert r.json()["totals"]["Transfer"] == "19.49"
    assert await shop.balance("1210") == "0.00"
    assert await shop.balance("1360") == "-19.49"
    cleared = await upload_statement(shop, camt053("ST-rc-2", [("19.49", "DBIT", "AMAZON PAYMENTS")]))
    assert [line["outcome"] for line in cleared.json()["lines"]] == ["payout_cleared"]
    assert (await shop.balance("1360"), await shop.balance("1200")) == ("0.00", "-19.49")


async def test_refund_and_chargeback_paid_back_settle_and_win_the_dispute(shop: Shop) -> None:
    await paid_order(shop, "rc-5")
    r = await shop.document(
        "rc-5",
        "returns",
        {
            "return_reference": "R-rc-5",
            "return_date": "2026-11-25",
            "invoice_reference": "I-rc-5",
            "reason": "CUSTOMER_RETURN",
            "items": [{"item_reference": 2}],
        },
    )
    assert r.status_code == 201, r.text
    await shop.process_refunds()
    chargeback = await shop.chargeback("rc-5", "50.00")

    async def booked() -> None:
        assert await shop.customer_state() == ("DEBIT", "50.00")

    await eventually(booked)
    await shop.resolve_dispute(chargeback["disputeId"], "MerchantWon")  # Amazon pays it back: a positive row
    settled = await upload_settlement(shop, await settlement_report(shop))
    assert settled.status_code == 201, settled.text
    assert settled.json()["outcomes"] == {"matched": 4, "payout": 1, "reserve": 1}  # the IPN won the dispute first
    assert [d["state"] for d in (await shop.tenant.get("/disputes")).json()] == ["won"]
    await shop.assert_books(("BALANCED", "0.00"))


async def test_rows_the_ledger_cannot_match_become_exceptions_an_accountant_clears(shop: Shop) -> None:
    assert (await shop.create_order("rc-3", [item(1, "119.00")])).status_code == 201
    assert (await shop.invoice("rc-3", "I-rc-3", [1])).status_code == 201
    order = await shop.order("rc-3")
    capture = order["charges"][0]["charge_id"]
    amazon_order = order["charge_permission_id"]
    report = hand_report(
        shop.merchant_id,
        "HAND-0001",
        [
            ("Capture", capture, "", amazon_order, "118.00", "-2.59"),  # Amazon says 118.00, the ledger 119.00
            ("Capture", "P01-0000000-0000000-C999999", "", "P01-0000000-0000000", "10.00", "-0.54"),
            ("Adjustment", "", "", "", "5.00", "0.00"),
            ("Chargeback", "CB-HAND-1", "", amazon_order, "-20.00", "-15.00"),  # no IPN: booked from the row
        ],
    )
    r = await upload_settlement(shop, report)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["outcomes"] == {"booked": 1, "exception": 3}
    assert sorted((e["kind"], e["amount"]) for e in out["exceptions"]) == [
        ("amount_mismatch", "-1.00"),
        ("unclassified", "5.00"),
        ("unknown_capture", "10.00"),
    ]
    assert await shop.balance("1590") == "-14.00"  # parked: 10.00 + 5.00 in, 1.00 out
    parked = {e["suspense_entry_id"] for e in await exceptions(shop)}
    assert len(parked) == 3, "one entry per row, nothing netted"
    t = shop.tenant
    assert (await t.client.put(t.url("/datev/settings"), json=SETTINGS, headers=t.headers())).status_code == 200
    _, rows = read_datev((await t.get("/periods/2026-11/datev")).content)
    assert [r for r in rows if r[KONTO] == r[GEGEN]] == []
    assert await shop.customer_state() == ("DEBIT", "20.00")  # the chargeback revived the claim
    assert len((await shop.tenant.get("/disputes", state="open")).json()) == 1

    items = {e["kind"]: e for e in await exceptions(shop)}
    assert {e["line"] for e in items.values()} == {7, 8, 9}
    bad = await resolve(shop, items["unclassified"]["exception_id"], {"action": "resolve", "reason": "fee refund"})
    assert (bad.status_code, bad.json()["code"]) == (422, "account_required")
    needs_customer = await resolve(
        shop, items["unknown_capture"]["exception_id"], {"action": "resolve", "account": "1400", "reason": "x"}
    )
    assert (needs_customer.status_code, needs_customer.json()["code"]) == (422, "customer_mismatch")
    fee = await resolve(
        shop,
        items["unclassified"]["exception_id"],
        {"action": "resolve", "account": "4970", "reason": "Amazon refunded a fee"},
    )
    assert (fee.status_code, fee.json()["state"]) == (200, "resolved"), fee.text
    prepaid = await resolve(
        shop,
        items["unknown_capture"]["exception_id"],
        {"action": "resolve", "account": "1400", "customer": "C-100", "reason": "phone order paid via Amazon"},
    )
    assert prepaid.json()["state"] == "resolved"
    dismissed = await resolve(
        shop,
        items["amount_mismatch"]["exception_id"],
        {"action": "dismiss", "reason": "Amazon confirmed the row is wrong and corrects it next period"},
        key=shop.tenant.accountant_key,  # an accountant acts by hand
    )
    assert dismissed.json()["state"] == "dismissed"
    trail = (await shop.tenant.get("/audit")).json()["items"]
    assert [(a["action"], a["subject"], a["by"]["role"]) for a in trail] == [
        ("exception.dismissed", str(items["amount_mismatch"]["exception_id"]), "accountant"),
        ("exception.resolved", str(items["unknown_capture"]["exception_id"]), "poster"),
        ("exception.resolved", str(items["unclassified"]["exception_id"]), "poster"),
    ]
    assert trail[0]["reason"] == "Amazon confirmed the row is wrong and corrects it next period"
    assert trail[2]["details"]["account"] == "4970"
    twice = await resolve(shop, items["amount_mismatch"]["exception_id"], {"action": "dismiss", "reason": "again"})
    assert (twice.status_code, twice.json()["code"]) == (409, "exception_closed")
    assert await shop.balance("1590") == "0.00"
    assert await exceptions(shop) == []
    assert len(await exceptions(shop, state="resolved")) == 2
    assert [e["state"] for e in await exceptions(shop, state="all")] == ["dismissed", "resolved", "resolved"]
    assert await shop.customer_state() == ("DEBIT", "10.00")  # 20.00 charged back, 10.00 paid
    trial = (await shop.tenant.get("/reports/trial-balance")).json()
    assert trial["balanced"] is True


async def test_an_exception_resolved_onto_a_taxed_account_books_its_vat(shop: Shop) -> None:
    """QA14 #9: an unmatched bank credit of 50.00 resolved onto 8400 (revenue 19 %) is a sale of 50.00 gross: 42.02
    net on 8400 and 7.98 output VAT on 1776 (50.00 x 19/119, half-up), as an invoice splits it; the VAT summary
    and DATEV (one gross row, DATEV's automatic computes the same VAT) agree. Untaxed targets take the whole."""
    t = shop.tenant
    r = await upload_statement(shop, camt053("ST-VAT", [("50.00", "CRDT", "Spende"), ("10.00", "CRDT", "Zinsen")]))
    assert r.status_code == 201, r.text
    parked = {e["amount"]: e["exception_id"] for e in await exceptions(shop)}
    on_suspense = await resolve(shop, parked["50.00"], {"action": "resolve", "account": "1590", "reason": "x"})
    assert (on_suspense.status_code, on_suspense.json()["code"]) == (422, "suspense_target")
    assert on_suspense.json()["errors"][0]["message"]
    assert "SUSPENSE" in on_suspense.json()["detail"]
    done = await resolve(shop, parked["50.00"], {"action": "resolve", "account": "8400",
                                                 "reason": "Spende als Erlös gebucht"}, key=t.accountant_key)  # fmt: skip
    assert done.status_code == 200, done.text
    entry = (await t.get(f"/entries/{done.json()['resolution_entry_id']}")).json()
    assert [(x["account"], x["debit"], x["credit"]) for x in entry["lines"]] == [
        ("1590", "50.00", None),
        ("8400", None, "42.02"),
        ("1776", None, "7.98"),
    ]
    interest = await resolve(shop, parked["10.00"], {"action": "resolve", "account": "2650", "reason": "Zinsen"})
    entry = (await t.get(f"/entries/{interest.json()['resolution_entry_id']}")).json()
    assert [(x["account"], x["credit"]) for x in entry["lines"][1:]] == [("2650", "10.00")]
    assert await shop.balance("1590") == "0.00"
    vat = (await t.get("/reports/vat-summary", **{"from": "2026-11-01", "to": "2026-11-30"})).json()
    (row,) = [v for v in vat if v["rate"] == "19"]
    assert (row["sales"], row["sales_tax"], row["taxable"], row["tax"]) == ("42.02", "7.98", "42.02", "7.98")
    assert (await t.client.put(t.url("/datev/settings"), json=SETTINGS, headers=t.headers())).status_code == 200
    _, rows = read_datev((await t.get("/periods/2026-11/datev")).content)
    assert [(r["Umsatz (ohne Soll/Haben-Kz)"], r[KONTO], r[GEGEN], r["BU-Schlüssel"]) for r in rows
            if r[GEGEN] == "8400" or r[KONTO] == "8400"] == [("50,00", "1590", "8400", "")]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "field", "code"),
    [
        (
            lambda r: r.replace('"-2.59","0.00","-2.59","115.41"', '"-2.59","0.00","-2.59","115.42"'),
            "line 7, column NetTransactionAmount",
            "invalid_settlement_report",
        ),
        (lambda r: r.replace('"EUR"', '"USD"', 1), "line 7, column CurrencyCode", "invalid_settlement_report"),
        (lambda r: r.replace('"118.00"', '"11x.00"'), "line 7, column TransactionAmount", "invalid_settlement_report"),
        (
            lambda r: r.replace('"HAND-0002"', '"HAND-0003"', 1),
            "line 8, column SettlementId",
            "invalid_settlement_report",
        ),
        (
            lambda r: r.replace('"TotalTransactionFee",', ""),
            "line 6, column TotalTransactionFee",
            "invalid_settlement_report",
        ),
        (
            lambda r: r.replace('"2026-11-26T10:00:00 +0000"', '"26.11.2026"', 1),
            "line 7, column TransactionPostedDate",
            "invalid_settlement_report",
        ),
        (lambda r: r.replace('"SellerId","', '"SellerId","X'), "line 3, column SellerId", "seller_mismatch"),
    ],
)
async def test_malformed_settlement_reports_name_line_and_column_and_book_nothing(
    shop: Shop, mutate: Any, field: str, code: str
) -> None:
    report = hand_report(
        shop.merchant_id,
        "HAND-0002",
        [("Capture", "P01-1", "", "P01", "118.00", "-2.59"), ("Adjustment", "", "", "", "5.00", "0.00")],
    )
    bad = mutate(report)
    assert bad != report
    r = await upload_settlement(shop, bad)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert (r.json()["code"], [e["field"] for e in r.json()["errors"]][:1]) == (code, [field])
    assert (await shop.tenant.get("/amazon-pay/settlements/HAND-0002")).status_code == 404
    assert await shop.balance("1590") == "0.00"
    assert (await upload_settlement(shop, report)).status_code == 201  # the corrected file imports


async def test_not_a_settlement_report(shop: Shop) -> None:
    for body in (b"\xff\xfe garbage", b"", b'"Amazon Payments Advanced",\n"SellerId","A"\n', b'"a"b"\n'):
        r = await upload_settlement(shop, body)
        assert r.status_code == 422, (body, r.text)


async def test_bank_transfers_pay_the_invoice_or_order_they_name_in_part_in_full_or_beyond(
    shop: Shop, pool: asyncpg.Pool
) -> None:
    """A transfer naming an invoice (or the order) pays it whatever the amount: the rest stays due, more than owed
    is the customer's credit. One naming only the customer is matched within the tolerance of what is owed."""
    await paid_order(shop, "rc-4")
    await shop.chargeback("rc-4", "60.00")

    async def booked() -> None:
        assert await shop.customer_state() == ("DEBIT", "60.00")

    await eventually(booked)
    first = await upload_statement(
        shop,
        camt053(
            "ST-rc-4a",
            [
                ("30.00", "CRDT", "Rechnung I-rc-4 Teilzahlung"),
                ("12.34", "DBIT", "Kontofuehrung"),
                ("7.00", "CRDT", "?"),
            ],
        ),
    )
    assert first.status_code == 201, first.text
    lines = first.json()["lines"]
    assert [(x["outcome"], x["match"]) for x in lines] == [
        ("payment", "invoice I-rc-4"), ("exception", None), ("exception", None)
    ]  # fmt: skip
    assert lines[0]["note"] == "customer C-100 owed 60.00: 30.00 still due"  # a part payment is never parked
    assert (lines[0]["counterparty_name"], lines[0]["counterparty_iban"]) == ("Erika Mustermann", "")  # .001.02
    assert await shop.customer_state() == ("DEBIT", "30.00")
    kinds = {e["kind"]: e for e in await exceptions(shop, source="bank")}
    assert set(kinds) == {"unmatched_debit", "unmatched_credit"}
    assert kinds["unmatched_debit"]["amount"] == "-12.34"
    assert [x["exception_id"] for x in lines[1:]] == [kinds["unmatched_debit"]["exception_id"],
                                                      kinds["unmatched_credit"]["exception_id"]]  # fmt: skip
    assert await shop.balance("1200") == "24.66"

    second = await upload_statement(
        shop, camt053("ST-rc-4b", [("29.50", "CRDT", "Kunde C-100 Rest")]), tolerance="1.00"
    )
    assert second.status_code == 201, second.text
    assert [(line["outcome"], line["match"]) for line in second.json()["lines"]] == [("payment", "customer C-100")]
    assert await shop.customer_state() == ("DEBIT", "0.50")
    third = await upload_statement(
        shop,
        camt053("ST-rc-4c", [("0.50", "CRDT", "I-rc-4"), ("5.00", "CRDT", "Bestellung rc-4"),
                             ("2.00", "CRDT", "Kunde C-100")]),
    )  # fmt: skip
    assert [(x["outcome"], x["match"], x["note"]) for x in third.json()["lines"]] == [
        ("payment", "invoice I-rc-4", "customer C-100 owed 0.50: paid in full"),
        ("payment", "order rc-4",
         "customer C-100 owed 0.00: 5.00 more than owed is the customer's credit (a prepayment received)"),
        ("exception", None, ""),  # a customer alone, 2.00 while nothing is owed: outside the tolerance
    ]  # fmt: skip
    assert await shop.customer_state() == ("CREDIT", "5.00")
    payments = await pool.fetch(
        "SELECT gross_minor FROM order_documents WHERE merchant_id = $1 AND order_ref = 'rc-4' AND kind = 'payment' "
        "ORDER BY gross_minor",
        shop.tenant.merchant_id,
    )
    assert [r["gross_minor"] for r in payments] == [50, 500, 3000]  # each recorded as a payment of the order
    sheet = (await shop.tenant.get("/reports/balance-sheet", as_of="2026-11-30")).json()
    prepaid = [r for r in sheet["liabilities"] if r["portion"] == "credit_balances"]
    assert [(r["account"], r["amount"], r["customers"]) for r in prepaid] == [("1400", "5.00", 1)]
    await shop.assert_books(("CREDIT", "5.00"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("<Document><BkToCstmrStmt><Stmt>", "line 1, column 32"),
        ("not xml at all", "line 1, column 1"),
        (
            '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><Document>&b;</Document>',
            "document",
        ),
        ('<?xml version="1.0"?><Document><Other/></Document>', "Document/BkToCstmrStmt"),
        (camt053("ST-bad", [("10.00", "CRDT", "x")]).replace('<Amt Ccy="EUR">10.00</Amt>', ""), "Stmt[1]/Ntry[1]/Amt"),
        (camt053("ST-bad", [("10.00", "CRDT", "x")], currency="USD"), "Stmt[1]/Acct/Ccy"),
        (camt053("ST-bad", [("10.00", "XXXX", "x")]), "Stmt[1]/Ntry[1]/CdtDbtInd"),
        (camt053("ST-bad", [("1O.00", "CRDT", "x")]), "Stmt[1]/Ntry[1]/Amt"),
    ],
)
async def test_malformed_bank_statements_are_refused_whole(shop: Shop, body: str, field: str) -> None:
    r = await upload_statement(shop, body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_bank_statement"
    assert r.json()["errors"][0]["field"] == field
    assert await shop.balance("1200") == "0.00"

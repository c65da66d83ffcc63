"""Bank statements as the bank sent them: one booking per statement line, the counterparty kept on every line,
the statement's balances checked against themselves, the previous statement and the ledger.

The statements are CAMT.053.001.08 as German banks send them (balances OPBD/CLBD, sequence numbers, related
parties with `Pty/Nm` and IBANs), written by `statement` below; the month's DATEV export is read back with the
reader of test_datev.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from xml.sax.saxutils import escape

import asyncpg
import httpx
import pytest
from litestar import Litestar

from tests.conftest import Simulator, Tenant
from tests.e2e.amazon import Shop, make_shop, paid_order
from tests.e2e.test_datev import GEGEN, KONTO, SETTINGS, read_datev
from tests.e2e.test_reconciliation import exceptions, resolve, settlement_report, upload_settlement
from tests.e2e.test_web_pages import sign_in

IBAN = "DE02120300000000202051"  # the merchant's account
ERIKA = ("Erika Mustermann", "DE89370400440532013000")
SHOP_SUPPLIES = ("Büro & Co. KG", "DE75512108001245126199")


class Entry(NamedTuple):
    amount: str
    indicator: str  # CRDT, DBIT
    remittance: str
    party: tuple[str, str] = ERIKA  # the debtor of a credit, the creditor of a debit
    day: str = "2026-11-27"


def statement(
    statement_id: str,
    entries: list[Entry],
    *,
    sequence: int | None = None,
    opening: str | None = None,
    closing: str | None = None,
    day: str = "2026-11-27",
    account: str = IBAN,
) -> bytes:
    """A CAMT.053.001.08 statement; balances signed ("-5.00": overdrawn), omitted when None."""

    def balance(code: str, amount: str) -> str:
        indicator = "DBIT" if amount.startswith("-") else "CRDT"
        return (f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{amount.lstrip("-")}</Amt>'
                f"<CdtDbtInd>{indicator}</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>")  # fmt: skip

    def party(e: Entry) -> str:
        name, iban = escape(e.party[0]), e.party[1]
        own = "<Cdtr><Pty><Nm>Müller Versand GmbH</Nm></Pty></Cdtr>" if e.indicator == "CRDT" else ""
        if e.indicator == "CRDT":
            return (f"<RltdPties><Dbtr><Pty><Nm>{name}</Nm></Pty></Dbtr><DbtrAcct><Id><IBAN>{iban}</IBAN></Id>"
                    f"</DbtrAcct>{own}<CdtrAcct><Id><IBAN>{IBAN}</IBAN></Id></CdtrAcct></RltdPties>")  # fmt: skip
        return (f"<RltdPties><Dbtr><Pty><Nm>Müller Versand GmbH</Nm></Pty></Dbtr><DbtrAcct><Id><IBAN>{IBAN}</IBAN>"
                f"</Id></DbtrAcct><Cdtr><Pty><Nm>{name}</Nm></Pty></Cdtr><CdtrAcct><Id><IBAN>{iban}</IBAN></Id>"
                "</CdtrAcct></RltdPties>")  # fmt: skip

    ntry = "".join(
        f"""<Ntry><NtryRef>{n}</NtryRef><Amt Ccy="EUR">{e.amount}</Amt><CdtDbtInd>{e.indicator}</CdtDbtInd>
        <Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{e.day}</Dt></BookgDt><ValDt><Dt>{e.day}</Dt></ValDt>
        <AcctSvcrRef>{statement_id}-{n}</AcctSvcrRef><BkTxCd><Domn><Cd>PMNT</Cd></Domn></BkTxCd>
        <NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
        <Amt Ccy="EUR">{e.amount}</Amt><CdtDbtInd>{e.indicator}</CdtDbtInd>{party(e)}
        <RmtInf><Ustrd>{e.remittance}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"""
        for n, e in enumerate(entries, start=1)
    )
    seq = f"<ElctrncSeqNb>{sequence}</ElctrncSeqNb>" if sequence is not None else ""
    balances = (balance("OPBD", opening) if opening else "") + (balance("CLBD", closing) if closing else "")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
<GrpHdr><MsgId>MSG-{statement_id}</MsgId><CreDtTm>{day}T18:00:00+01:00</CreDtTm></GrpHdr>
<Stmt><Id>{statement_id}</Id>{seq}<CreDtTm>{day}T18:00:00+01:00</CreDtTm>
<FrToDt><FrDtTm>{day}T00:00:00+01:00</FrDtTm><ToDtTm>{day}T23:59:59+01:00</ToDtTm></FrToDt>
<Acct><Id><IBAN>{account}</IBAN></Id><Ccy>EUR</Ccy><Ownr><Nm>Müller Versand GmbH</Nm></Ownr></Acct>
{balances}{ntry}</Stmt></BkToCstmrStmt></Document>""".encode()


@pytest.fixture
async def shop(tenant: Tenant, simulator: Simulator) -> Shop:
    return await make_shop(tenant, simulator)


async def upload(shop: Shop, body: bytes) -> httpx.Response:
    t = shop.tenant
    headers = t.headers(t.poster_key) | {"Content-Type": "application/xml"}
    return await t.client.post(t.url("/bank-statements"), content=body, headers=headers)


async def entry(shop: Shop, entry_id: int) -> dict[str, Any]:
    r = await shop.tenant.get(f"/entries/{entry_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def checks(out: dict[str, Any], n: int = 0) -> dict[str, tuple[str, str]]:
    return {c["check"]: (c["outcome"], c["detail"]) for c in out["statements"][n]["checks"]}


async def test_each_statement_line_is_one_booking_and_the_datev_month_has_no_row_on_one_account(
    shop: Shop, pool: asyncpg.Pool
) -> None:
    """A month with orders, a settlement and a statement holding a payout, a customer's transfer and lines nobody
    can explain (money in and out): every line is an entry of its own, dated on its booking day, naming the
    counterparty; DATEV gets no row whose Konto is its Gegenkonto (a statement netted into one entry gave one:
    suspense against suspense)."""
    await paid_order(shop, "bs-1")  # 60.00, paid through Amazon Pay
    settled = await upload_settlement(shop, await settlement_report(shop))
    assert settled.status_code == 201, settled.text
    payout = settled.json()["totals"]["Transfer"].lstrip("-")
    await paid_order(shop, "bs-2")
    await shop.chargeback("bs-2", "60.00")  # the buyer's bank took the money back: C-100 owes 60.00 again
    await shop.drain_ipns()
    lines = [
        Entry(payout, "CRDT", f"AMAZON PAYMENTS EUROPE {settled.json()['settlement_id']}", ("Amazon Payments Europe",
              "LU89751000135104200E")),
        Entry("30.00", "CRDT", "Rechnung I-bs-2", day="2026-11-26"),
        Entry("12.34", "DBIT", "Kontofuehrung November", SHOP_SUPPLIES),
        Entry("7.00", "CRDT", "Danke!", ("Max Muster", "DE44500105175407324931")),
        Entry("19.99", "DBIT", "Druckerpapier", SHOP_SUPPLIES),
    ]  # fmt: skip
    r = await upload(shop, statement("2026-11-27-1", lines))
    assert r.status_code == 201, r.text
    out = r.json()
    assert [(x["outcome"], x["counterparty_name"], x["counterparty_iban"]) for x in out["lines"]] == [
        ("payout_cleared", "Amazon Payments Europe", "LU89751000135104200E"),
        ("payment", *ERIKA),
        ("exception", *SHOP_SUPPLIES),
        ("exception", "Max Muster", "DE44500105175407324931"),
        ("exception", *SHOP_SUPPLIES),
    ]
    assert [x["remittance"] for x in out["lines"]][1:3] == ["Rechnung I-bs-2", "Kontofuehrung November"]
    ids = [x["entry_id"] for x in out["lines"]]
    assert None not in ids
    assert len(set(ids)) == 5, "one entry per line"
    booked = [await entry(shop, i) for i in ids]
    assert [e["effective_date"] for e in booked] == [
        "2026-11-27",
        "2026-11-26",
        "2026-11-27",
        "2026-11-27",
        "2026-11-27",
    ]
    assert all(len(e["lines"]) == 2 for e in booked)
    accounts = [sorted((ln["account"], ln["debit"] or "-" + ln["credit"]) for ln in e["lines"]) for e in booked]
    assert accounts[2] == [("1200", "-12.34"), ("1590", "12.34")]  # money out, parked: Dr SUSPENSE / Cr BANK
    assert accounts[3] == [("1200", "7.00"), ("1590", "-7.00")]
    for e, (name, iban) in zip(booked[1:], [ERIKA, SHOP_SUPPLIES, ("Max Muster", "DE44500105175407324931")],
                               strict=False):  # fmt: skip
        assert f"{name} ({iban})" in e["description"], e["description"]
        assert (e["metadata"]["counterparty_name"], e["metadata"]["counterparty_iban"]) == (name, iban)
        assert e["metadata"]["bank_statement"] == f"{IBAN}/2026-11-27-1/2026-11-27"
    assert booked[2]["metadata"]["bank_line"] == "3"
    found = await shop.tenant.get("/entries", metadata=f"counterparty_iban:{SHOP_SUPPLIES[1]}")
    assert sorted(e["id"] for e in found.json()["items"]) == sorted(ids[2::2])  # both lines paid to Büro & Co.
    received = await pool.fetchval(
        "SELECT payload FROM outbox WHERE merchant_id = $1 AND type = 'payment.received' "
        "AND payload->>'method' = 'BANK_TRANSFER'",
        shop.tenant.merchant_id,
    )
    assert (received["invoice_reference"], received["amount"], received["remaining_amount"]) == ("I-bs-2", "30.00",
                                                                                                 "30.00")  # fmt: skip
    parked = {x["exception_id"]: x for x in await exceptions(shop, source="bank")}
    assert len(parked) == 3
    assert all(p["suspense_entry_id"] in ids for p in parked.values())
    assert "Büro & Co. KG (DE75512108001245126199)" in parked[out["lines"][2]["exception_id"]]["description"]

    t = shop.tenant
    assert (await t.client.put(t.url("/datev/settings"), json=SETTINGS, headers=t.headers())).status_code == 200
    datev = await t.get("/periods/2026-11/datev")
    assert datev.status_code == 200, datev.text
    _, rows = read_datev(datev.content)
    assert rows
    assert [r for r in rows if r[KONTO] == r[GEGEN]] == [], "no row books an account against itself"
    bank_rows = [r for r in rows if "1200" in (r[KONTO], r[GEGEN])]
    assert len(bank_rows) == 5, "one DATEV row per statement line"
    # QA14 #11: Belegfeld 1 is a document number: the payout's settlement, the invoice the payment names (DATEV's
    # open-item matching), and for each parked line a number of its own that fits DATEV's 36 characters
    beleg = {int(r["Zusatzinformation - Inhalt 1"]): r["Belegfeld 1"] for r in bank_rows}
    belege = [beleg[i] for i in ids]
    assert belege[:2] == [settled.json()["settlement_id"], "I-bs-2"]
    assert len(set(belege[2:])) == 3
    assert all(len(b) <= 36 and b.startswith("BANK-2026112") for b in belege[2:]), belege
    assert [e["reference"] for e in booked[2:]] == belege[2:]
    # QA14 #10: the payment is a document of order bs-2: not reversed behind the order's back
    refused = await t.post(f"/entries/{ids[1]}/reversal", {"reason": "x"}, key=t.accountant_key)
    assert (refused.status_code, refused.json()["code"]) == (409, "entry_reversal_refused"), refused.text
    assert "of order bs-2" in refused.json()["detail"]
    await shop.assert_books(("DEBIT", "30.00"))


async def test_balances_are_checked_against_each_other_the_previous_statement_and_the_ledger(shop: Shop) -> None:
    lines = [Entry("100.00", "CRDT", "?", day="2026-11-02"), Entry("20.00", "DBIT", "fee", day="2026-11-02")]
    first = await upload(shop, statement("S1", lines, sequence=1, opening="0.00", closing="80.00", day="2026-11-02"))
    assert first.status_code == 201, first.text
    assert checks(first.json()) == {
        "opening_balance": ("skipped", f"the first statement of account {IBAN} imported: nothing to compare with"),
        "closing_balance": ("ok", "opening balance 0.00 + booked lines 80.00 = 80.00 = closing balance"),
        "ledger_balance": ("ok", "closing balance 80.00 = the ledger's bank account on 2026-11-02"),
    }
    assert {k: first.json()["statements"][0][k] for k in ("sequence", "opening_balance", "closing_balance",
                                                          "movements")} == {
        "sequence": 1, "opening_balance": "0.00", "closing_balance": "80.00", "movements": "80.00"}  # fmt: skip
    second = await upload(shop, statement("S2", [Entry("50.00", "CRDT", "?", day="2026-11-03")], sequence=2,
                                          opening="80.00", closing="130.00", day="2026-11-03"))  # fmt: skip
    assert checks(second.json())["opening_balance"] == (
        "ok",
        "opening balance 80.00 = closing balance of the previous statement S1 of 2026-11-02",
    )
    assert {c["outcome"] for c in second.json()["statements"][0]["checks"]} == {"ok"}
    before = {e["exception_id"] for e in await exceptions(shop)}

    # statement no. 3 never arrived; no. 4 opens with 200.00 and its lines do not add up to its closing balance
    fourth = await upload(shop, statement("S4", [Entry("10.00", "CRDT", "?", day="2026-11-05")], sequence=4,
                                          opening="200.00", closing="215.00", day="2026-11-05"))  # fmt: skip
    assert fourth.status_code == 201, fourth.text
    found = checks(fourth.json())
    assert found["opening_balance"] == ("failed", f"opening balance 200.00 of statement S4 (no. 4) of account {IBAN} "
        "dated 2026-11-05 differs from the closing balance 130.00 of the previous statement S2 of 2026-11-03 by "
        "70.00; statement no. 3 not imported")  # fmt: skip
    assert found["closing_balance"] == ("failed", f"statement S4 (no. 4) of account {IBAN} dated 2026-11-05: "
        "opening balance 200.00 + booked lines 10.00 = 210.00, but its closing balance is 215.00 (difference 5.00): "
        "the statement's lines do not add up to its balances")  # fmt: skip
    assert found["ledger_balance"] == ("failed", f"statement S4 (no. 4) of account {IBAN} dated 2026-11-05: the "
        "bank's closing balance 215.00 on 2026-11-05, the ledger's bank account 140.00: the bank holds more, by "
        "75.00")  # fmt: skip
    figures = [(c["stated"], c["expected"], c["difference"]) for c in fourth.json()["statements"][0]["checks"]]
    assert figures == [("200.00", "130.00", "70.00"), ("215.00", "210.00", "5.00"), ("215.00", "140.00", "75.00")]
    raised = [e for e in await exceptions(shop) if e["exception_id"] not in before]
    mismatches = {e["kind"]: e for e in raised if e["kind"].endswith("_mismatch")}
    assert {k: (e["amount"], e["suspense_entry_id"], e["source_reference"]) for k, e in mismatches.items()} == {
        "opening_balance_mismatch": ("70.00", None, f"{IBAN}/S4/2026-11-05"),
        "closing_balance_mismatch": ("5.00", None, f"{IBAN}/S4/2026-11-05"),
        "ledger_balance_mismatch": ("75.00", None, f"{IBAN}/S4/2026-11-05"),
    }, "a difference to explain parks nothing"
    assert [c["exception_id"] for c in fourth.json()["statements"][0]["checks"]] == [
        mismatches[k]["exception_id"] for k in ("opening_balance_mismatch", "closing_balance_mismatch",
                                                "ledger_balance_mismatch")]  # fmt: skip
    assert fourth.json()["exception_count"] == 4  # the line nobody can explain, and the three checks
    bank = await shop.balance("1200")
    dismissed = await resolve(shop, mismatches["opening_balance_mismatch"]["exception_id"],
                              {"action": "dismiss", "reason": "statement 3 requested from the bank"})  # fmt: skip
    assert dismissed.status_code == 200, dismissed.text
    assert (dismissed.json()["state"], dismissed.json()["resolution_entry_id"]) == ("dismissed", None)
    assert await shop.balance("1200") == bank, "dismissing a noted difference books nothing"


async def test_a_transfer_booked_by_hand_shows_as_the_ledger_holding_more_than_the_bank(shop: Shop) -> None:
    """The payment service reported a bank transfer (booked to BANK) that the bank never received."""
    await paid_order(shop, "bs-3")
    by_hand = await shop.tenant.post(
        "/customers/C-100/orders/bs-3/payments",
        {"payment_reference": "P-bs-3", "payment_date": "2026-11-06", "amount": "5.00"},
        key=shop.tenant.poster_key,
    )
    assert by_hand.status_code == 201, by_hand.text
    r = await upload(shop, statement("H1", [], sequence=1, opening="0.00", closing="0.00", day="2026-11-06"))
    assert r.status_code == 201, r.text
    assert checks(r.json())["closing_balance"][0] == "ok"
    assert checks(r.json())["ledger_balance"] == ("failed", f"statement H1 (no. 1) of account {IBAN} dated "
        "2026-11-06: the bank's closing balance 0.00 on 2026-11-06, the ledger's bank account 5.00: the ledger "
        "holds more, by 5.00")  # fmt: skip
    (raised,) = [e for e in await exceptions(shop) if e["kind"] == "ledger_balance_mismatch"]
    assert raised["amount"] == "-5.00"  # the bank's figure minus the ledger's


async def test_the_ledger_is_compared_with_every_bank_account_of_the_business(shop: Shop) -> None:
    """Two bank accounts, both booked on the one bank account of the chart: the ledger holds their sum."""
    a = await upload(shop, statement("A1", [Entry("40.00", "CRDT", "?")], opening="0.00", closing="40.00"))
    assert checks(a.json())["ledger_balance"][0] == "ok"
    other = "DE12500105170648489890"
    b = await upload(shop, statement("B1", [Entry("2.50", "CRDT", "?")], opening="0.00", closing="2.50",
                                     account=other))  # fmt: skip
    assert checks(b.json())["ledger_balance"] == (
        "ok", f"closing balances of 2 accounts adding up to 42.50 ({IBAN}: 40.00, {other}: 2.50) = the ledger's "
        "bank account on 2026-11-27")  # fmt: skip


async def test_a_statement_without_balances_is_booked_with_its_checks_skipped(shop: Shop) -> None:
    r = await upload(shop, statement("NB", [Entry("1.00", "CRDT", "?")]))
    assert r.status_code == 201, r.text
    assert {c["outcome"] for c in r.json()["statements"][0]["checks"]} == {"skipped"}
    assert r.json()["exception_count"] == 1


async def test_booking_dates_beyond_the_posting_horizon_are_refused(shop: Shop) -> None:
    r = await upload(shop, statement("FAR", [Entry("1.00", "CRDT", "?"), Entry("2.00", "CRDT", "?", day="2207-11-27")]))
    assert (r.status_code, r.json()["code"]) == (422, "date_beyond_horizon"), r.text
    assert [e["field"] for e in r.json()["errors"]] == ["Stmt[1]/Ntry[2]/BookgDt"]
    assert await shop.balance("1200") == "0.00"


async def test_the_statement_page_shows_balances_checks_and_counterparties(app: Litestar, shop: Shop) -> None:
    lines = [Entry("100.00", "CRDT", "?", day="2026-11-02"), Entry("20.00", "DBIT", "fee", SHOP_SUPPLIES, "2026-11-02")]
    r = await upload(shop, statement("W1", lines, sequence=7, opening="0.00", closing="85.00", day="2026-11-02"))
    assert r.status_code == 201, r.text
    listed = (await shop.tenant.get("/bank-statements")).json()["items"]
    assert [(s["sequence"], s["opening_balance"], s["closing_balance"]) for s in listed] == [(7, "0.00", "85.00")]
    assert [(c["check"], c["outcome"]) for c in listed[0]["checks"]] == [
        ("opening_balance", "skipped"), ("closing_balance", "failed"), ("ledger_balance", "failed")
    ]  # fmt: skip
    assert [(x["counterparty_name"], x["reference"]) for x in listed[0]["lines"]] == [
        (ERIKA[0], "W1-1"), (SHOP_SUPPLIES[0], "W1-2")
    ]  # fmt: skip
    web = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kontor.test")
    await sign_in(web, shop.tenant.accountant_key)
    page = await web.get(f"/ui/1001/bank-statements/2026-11-02/W1?account={IBAN}")
    assert page.status_code == 200, page.text
    for shown in ("Auszugsnummer", "Anfangssaldo", "85,00", "Saldenprüfungen", "Anfangssaldo + Umsätze = Schlusssaldo",
                  "übersprungen", "fehlgeschlagen", "Büro &amp; Co. KG", SHOP_SUPPLIES[1]):  # fmt: skip
        assert shown in page.text, shown
    await web.aclose()

"""Dunning letters through the API: assembled from the notice, the order's bill-to and invoices and the business
profile; their payment reference, paid by a bank transfer in a CAMT.053 statement, settles the customer."""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from pypdf import PdfReader

from tests.conftest import Tenant, make_tenant
from tests.e2e.amazon import Shop, item, make_shop
from tests.e2e.test_business_profile import PROFILE
from tests.e2e.test_dunning import base_rate_2026, charged_back_order, day, put_policy, run
from tests.e2e.test_reconciliation import upload_statement
from tests.unit.test_letters import runs

BILL_TO = {"first_name": "Erika", "last_name": "Mustermann", "street": "Lindenweg", "street_number": "5",
           "postal_code": "80331", "postal_place": "München", "country_code": "DE"}  # fmt: skip


def text_of(pdf: bytes) -> str:
    return " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())


def german(amount: str) -> str:
    return amount.replace(".", ",") + " €"


def de_date(iso: str) -> str:
    return f"{iso[8:10]}.{iso[5:7]}.{iso[:4]}"


def statement(reference: str, amount: str, booked: str) -> str:
    """A CAMT.053.001.08 statement with one credit carrying the reference as a structured creditor reference."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
<GrpHdr><MsgId>MSG-L1</MsgId><CreDtTm>{booked}T18:00:00</CreDtTm></GrpHdr>
<Stmt><Id>ST-LETTER-1</Id><CreDtTm>{booked}T18:00:00</CreDtTm>
<Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>
<Ntry><NtryRef>1</NtryRef><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
<BookgDt><Dt>{booked}</Dt></BookgDt><ValDt><Dt>{booked}</Dt></ValDt><AcctSvcrRef>BANK-L-1</AcctSvcrRef>
<NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
<RltdPties><Dbtr><Pty><Nm>Erika Mustermann</Nm></Pty></Dbtr></RltdPties>
<RmtInf><Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp><Ref>{reference}</Ref></CdtrRefInf></Strd>
</RmtInf></TxDtls></NtryDtls></Ntry></Stmt></BkToCstmrStmt></Document>"""


async def dunned(tenant: Tenant, simulator: Any) -> tuple[Shop, list[dict[str, Any]]]:
    """An order invoiced on day 0 and charged back (119.00), dunned on days 41 (reminder) and 70 (1st notice)."""
    shop = await make_shop(tenant, simulator)
    await charged_back_order(shop, "lt-1", [item(1, "119.00")], "119.00", bill_to=BILL_TO)
    await put_policy(shop, interest=True)
    assert (await run(shop, 41))["counts"]["notice"] == 1
    assert (await run(shop, 70))["counts"]["notice"] == 1  # no profile: runs do not need one
    notices = (await tenant.get("/dunning/notices")).json()["items"]
    assert [n["level"] for n in notices] == [1, 2]
    return shop, notices


@pytest.mark.usefixtures(base_rate_2026.__name__)
async def test_the_letter_carries_everything_and_its_reference_pays_the_invoices(
    tenant: Tenant, simulator: Any, pool: asyncpg.Pool
) -> None:
    shop, notices = await dunned(tenant, simulator)
    notice = notices[1]
    letter_url = f"/dunning/notices/{notice['notice_id']}/letter"
    missing = await tenant.get(f"{letter_url}.pdf", key=tenant.accountant_key)
    assert (missing.status_code, missing.json()["code"]) == (409, "profile_missing")
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert (await tenant.client.put(tenant.url("/profile"), json=PROFILE, headers=tenant.headers())).status_code == 200

    r = await tenant.get(f"{letter_url}.pdf", key=tenant.accountant_key)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-")
    text = text_of(r.content)
    c = notice["content"]
    reference = notice["payment_reference"]
    spaced = " ".join(reference[i : i + 4] for i in range(0, len(reference), 4))
    assert reference.startswith("RF")
    assert c["interest"] != "0.00"
    for expected in [
        "Müller Versand GmbH · Hafenstraße 12 · 20457 Hamburg",
        "Erika Mustermann Lindenweg 5 80331 München",
        f"Datum {de_date(notice['issued_on'])}", f"Kundennummer {shop.customer}",
        f"Mahnungsnr. {notice['notice_id']}",
        "1. Mahnung", "Guten Tag Erika Mustermann,",
        f"Rechnung I-lt-1 (Bestellung lt-1) {de_date(day(0))} {de_date(c['items'][0]['due_date'])} {german('119.00')}",
        f"Mahngebühr dieser Mahnung {german(c['fee'])}", f"Verzugszinsen {german(c['interest'])}",
        f"Verzugszinsen vom {de_date(c['default_on'])} bis {de_date(notice['issued_on'])} auf {german('119.00')}: "
        "Basiszinssatz 2,00 % + 5 Prozentpunkte = 7,00 % p. a.",
        f"Gesamtbetrag {german(c['total'])}",
        f"bis zum {de_date(notice['pay_by'])}",
        "IBAN DE89 3704 0044 0532 0130 00", "BIC COBADEFFXXX", f"Verwendungszweck {spaced}",
        "Amtsgericht Hamburg, HRB 123456", "USt-IdNr.: DE136695976",
    ]:  # fmt: skip
        assert expected in text, expected
    html = await tenant.get(f"{letter_url}.html", key=tenant.poster_key)
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert "I-lt-1" in html.text
    assert spaced in html.text
    assert f"<title>1. Mahnung · Mahnungsnr. {notice['notice_id']}</title>" in html.text  # a number, not a count
    assert f"Mahnung {notice['notice_id']}" not in text

    english = {**PROFILE, "letter_language": "en"}
    assert (await tenant.client.put(tenant.url("/profile"), json=english, headers=tenant.headers())).status_code == 200
    text = text_of((await tenant.get(f"{letter_url}.pdf")).content)
    assert "First dunning notice" in text
    assert "Dear Erika Mustermann," in text
    assert f"Please transfer the total of €{c['total']}" in text
    reminder = text_of((await tenant.get(f"/dunning/notices/{notices[0]['notice_id']}/letter.pdf")).content)
    assert "Payment reminder" in reminder

    # the merchant's notifications link the letter
    events = await pool.fetch(
        "SELECT type, payload FROM outbox WHERE merchant_id = $1 AND type IN ('reminder.sent', 'document.created') "
        "AND payload->>'notice_id' = $2",
        tenant.merchant_id,
        str(notice["notice_id"]),
    )
    assert len(events) == 2
    for event in events:
        assert event["payload"]["letter_pdf_url"] == f"/v1/businesses/1001{letter_url}.pdf"

    # the customer pays the letter's total, quoting its reference as the bank passes it on: the claims are settled
    s = await upload_statement(shop, statement(spaced, c["total"], day(72)))
    assert s.status_code == 201, s.text
    [line] = s.json()["lines"]
    assert (line["outcome"], line["match"]) == ("payment", f"payment reference {reference}")
    assert await shop.customer_state() == ("BALANCED", "0.00")
    items = (await tenant.get(f"/customers/{shop.customer}/open-items", as_of=day(72))).json()
    assert (items["principal"], items["costs"], items["interest"], items["total"]) == ([], "0.00", "0.00", "0.00")
    paid = (await tenant.get("/entries", reference=reference)).json()["items"]
    assert [(e["effective_date"], e["metadata"]["payment_reference"]) for e in paid] == [(day(72), reference)]
    assert (await run(shop, 84))["counts"].get("notice", 0) == 0  # nothing left to dun


async def test_a_reference_with_the_wrong_amount_is_parked(tenant: Tenant, simulator: Any) -> None:
    shop, notices = await dunned(tenant, simulator)
    s = await upload_statement(shop, statement(notices[1]["payment_reference"], "10.00", day(72)))
    assert s.status_code == 201, s.text
    assert s.json()["lines"][0]["outcome"] == "exception"
    assert s.json()["exceptions"][0]["kind"] == "amount_outside_tolerance"
    assert "asked" in s.json()["exceptions"][0]["description"]
    assert s.json()["exceptions"][0]["description"].startswith("10.00 arrived naming payment reference")  # QA14 #22


async def test_the_collection_letter(tenant: Tenant, simulator: Any) -> None:
    shop = await make_shop(tenant, simulator)
    await charged_back_order(shop, "lt-2", [item(1, "119.00")], "119.00", bill_to=BILL_TO)
    await put_policy(shop, after_final="collection", after_final_days=14)
    for n in (41, 70, 84, 98):
        await run(shop, n)
    [case] = (await tenant.get("/collection/handovers")).json()
    url = f"/collection/handovers/{case['case_id']}/letter"
    assert (await tenant.get(f"{url}.pdf")).json()["code"] == "profile_missing"
    assert (await tenant.client.put(tenant.url("/profile"), json=PROFILE, headers=tenant.headers())).status_code == 200
    text = text_of((await tenant.get(f"{url}.pdf")).content)
    for expected in ["Übergabe Ihrer Forderung an ein Inkassounternehmen", "Erika Mustermann Lindenweg 5",
                     "Rechnung I-lt-2", f"Gesamtbetrag {german(case['amount'])}", f"Inkasso-Fallnr. {case['case_id']}",
                     f"Mahnungen vom {de_date(day(41))}, {de_date(day(70))}, {de_date(day(84))}"]:  # fmt: skip
        assert expected in text, expected
    assert (await tenant.get(f"{url}.html")).status_code == 200
    assert (await tenant.get("/collection/handovers/999999/letter.pdf")).status_code == 404
    assert (await tenant.get("/dunning/notices/999999/letter.pdf")).json()["code"] == "notice_not_found"


# --- QA14 findings 4, 5, 6, 16, 17: what a stored bill-to and stored invoices make of a letter -----------------
async def dun_customers(tenant: Tenant, simulator: Any, bill_tos: dict[str, dict[str, Any]]) -> dict[str, int]:
    """One charged-back order per customer (order `o-<customer>`), dunned to the payment reminder on day 41;
    the notice id of each customer."""
    shop = await make_shop(tenant, simulator)
    for customer, bill_to in bill_tos.items():
        await charged_back_order(replace(shop, customer=customer), f"o-{customer}", [item(1, "59.50")], "59.50",
                                 bill_to=bill_to)  # fmt: skip
    await put_policy(shop)
    assert (await run(shop, 41))["counts"]["notice"] == len(bill_tos)
    assert (await tenant.client.put(tenant.url("/profile"), json=PROFILE, headers=tenant.headers())).status_code == 200
    return {n["customer"]: n["notice_id"] for n in (await tenant.get("/dunning/notices")).json()["items"]}


def window_lines(pdf: bytes) -> list[tuple[str, float, float]]:
    """The addressee's text runs in the DIN 5008 window (x, baseline y in mm): left of the information block, in
    the Anschriftzone (62.7 to 90 mm from the top)."""
    return [(t, x, y) for t, x, y, _ in runs(pdf) if x < 110 and 62.7 < y <= 90]


LONG = {**BILL_TO, "company": "Beispiel Handelsgesellschaft mbH & Co. KG Zweigniederlassung Süd",
        "first_name": "Hans-Jürgen", "last_name": "Überlänge-Schmidt", "street": "Am Langen Weg der nie endet",
        "street_number": "123a", "postal_code": "01067", "postal_place": "Dresden"}  # fmt: skip
CJK = {**BILL_TO, "first_name": "李小龙 😀", "last_name": "Ωmega-Straße"}


async def test_a_long_company_name_wraps_inside_the_window(tenant: Tenant, simulator: Any) -> None:
    notices = await dun_customers(tenant, simulator, {"C-2": LONG})
    pdf = await tenant.get(f"/dunning/notices/{notices['C-2']}/letter.pdf")
    assert pdf.status_code == 200, pdf.text
    window = window_lines(pdf.content)
    assert [t for t, _, _ in window] == ["Beispiel Handelsgesellschaft mbH & Co. KG", "Zweigniederlassung Süd",
                                         "Hans-Jürgen Überlänge-Schmidt", "Am Langen Weg der nie endet 123a",
                                         "01067 Dresden"]  # fmt: skip
    assert all(x == pytest.approx(25, abs=0.2) for _, x, _ in window)
    info = [(t, x) for t, x, y, _ in runs(pdf.content) if 45 < y < 90 and x >= 110]
    assert [t for t, x in info if x == pytest.approx(125, abs=0.5)][:4] == [
        "Datum", "Kundennummer", "Mahnungsnr.", "Zahlungsreferenz"]  # fmt: skip
    text = text_of(pdf.content)
    assert f"{LONG['company']} Hans-Jürgen Überlänge-Schmidt" in text  # nothing lost to the wrapping


async def test_chinese_greek_and_emoji_names_are_printed_and_a_character_no_font_has_is_refused(
    tenant: Tenant, simulator: Any
) -> None:
    hieroglyph = {**BILL_TO, "first_name": "Erika 𓀀"}
    notices = await dun_customers(tenant, simulator, {"C-4": CJK, "C-5": hieroglyph})
    pdf = await tenant.get(f"/dunning/notices/{notices['C-4']}/letter.pdf")
    assert pdf.status_code == 200, pdf.text
    text = text_of(pdf.content)
    assert "李小龙 😀 Ωmega-Straße Lindenweg 5" in text  # the addressee, whole
    assert "Guten Tag 李小龙 😀 Ωmega-Straße," in text
    refused = await tenant.get(f"/dunning/notices/{notices['C-5']}/letter.pdf")
    assert (refused.status_code, refused.json()["code"]) == (409, "characters_unprintable"), refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    [error] = refused.json()["errors"]
    assert error["field"] == "bill_to.first_name"
    assert "U+13000" in error["message"]
    html = await tenant.get(f"/dunning/notices/{notices['C-5']}/letter.html")
    assert html.status_code == 200  # a browser prints it with its own fonts
    assert "Erika 𓀀 Mustermann" in html.text


async def test_a_bill_to_without_a_postal_address_gets_no_letter_but_the_notice_is_recorded(
    tenant: Tenant, simulator: Any
) -> None:
    minimal = {"first_name": "Max", "last_name": "Minimal", "country_code": "DE"}  # as docs/amazon-pay.md shows
    notices = await dun_customers(tenant, simulator, {"C-14": minimal})
    [notice] = (await tenant.get("/dunning/notices", customer="C-14")).json()["items"]
    assert (notice["notice_id"], notice["level"]) == (notices["C-14"], 1)  # the run recorded it
    assert notice["payment_reference"].startswith("RF")
    for suffix in ("pdf", "html"):
        r = await tenant.get(f"/dunning/notices/{notice['notice_id']}/letter.{suffix}", key=tenant.accountant_key)
        assert (r.status_code, r.json()["code"]) == (409, "address_missing"), r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in r.json()["errors"]] == [
            "bill_to.street", "bill_to.postal_code", "bill_to.postal_place"]  # fmt: skip
        assert "o-C-14" in r.json()["detail"]  # the order whose bill-to it is


async def test_the_invoices_are_listed_by_date_then_number(tenant: Tenant, simulator: Any) -> None:
    shop = await make_shop(tenant, simulator)
    for ref in ("lt-10", "lt-2", "lt-9"):
        await charged_back_order(shop, ref, [item(1, "11.90")], "11.90", bill_to=BILL_TO)
    await put_policy(shop)
    assert (await run(shop, 41))["counts"]["notice"] == 1
    assert (await tenant.client.put(tenant.url("/profile"), json=PROFILE, headers=tenant.headers())).status_code == 200
    [notice] = (await tenant.get("/dunning/notices")).json()["items"]
    text = text_of((await tenant.get(f"/dunning/notices/{notice['notice_id']}/letter.pdf")).content)
    positions = [text.index(f"Rechnung I-{ref} ") for ref in ("lt-2", "lt-9", "lt-10")]
    assert positions == sorted(positions), text  # all dated day 0: by number, 2 < 9 < 10 (not as text)


FR_PROFILE = {
    "legal_name": "Other Ltd SARL",
    "address": {"street": "12 Rue de la Paix", "postcode": "75002", "city": "Paris", "country": "FR"},
    "bank": {"account_holder": "Other Ltd", "iban": "FR1420041010050500013M02606", "bic": "PSSTFRPPPAR"},
    "vat_id": "FR40303265045",
}


@pytest.mark.usefixtures(base_rate_2026.__name__)
async def test_an_english_letter_of_a_french_business_code(app_client: Any, simulator: Any) -> None:
    tenant = await make_tenant(app_client, businesses=[{"code": 2001, "country": "FR", "currency": "EUR"}])
    shop = replace(await make_shop(tenant, simulator), customer="F-1")
    paris = {"company": "Dupont SARL", "first_name": "Jean", "last_name": "Dupont", "street": "Rue de Rivoli",
             "street_number": "10", "postal_code": "75001", "postal_place": "Paris", "country_code": "FR"}  # fmt: skip
    await charged_back_order(shop, "fr-1", [item(1, "120.00", vat="20")], "120.00", bill_to=paris)
    await put_policy(shop)
    await run(shop, 41)
    await run(shop, 70)
    r = await tenant.client.put(tenant.url("/profile"), json=FR_PROFILE, headers=tenant.headers())
    assert (r.status_code, r.json()["letter_language"]) == (200, "en"), r.text
    notice = (await tenant.get("/dunning/notices", customer="F-1")).json()["items"][-1]
    assert notice["level"] == 2
    assert notice["content"]["flat_fee"] == "40.00"
    letter = await tenant.get(f"/dunning/notices/{notice['notice_id']}/letter.pdf")
    assert letter.status_code == 200, letter.text
    text = text_of(letter.content)
    for expected in [
        "Dupont SARL Jean Dupont 10 Rue de Rivoli 75001 Paris",  # the house number first, as in France
        f"Notice no. {notice['notice_id']}",
        "Dear Jean Dupont, Unfortunately, we have received no payment",  # a sentence after the salutation
        "Flat-rate compensation for recovery costs €40.00",
        "reference rate 2.00 % + 9 percentage points = 11.00 % a year.",
    ]:
        assert expected in text, expected
    assert "BGB" not in text  # no German statute for a French business code
    assert "§" not in text
    html = (await tenant.get(f"/dunning/notices/{notice['notice_id']}/letter.html")).text
    assert "= 11.00\xa0% a year" in html  # the number keeps its % sign

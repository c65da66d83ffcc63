"""The DATEV EXTF Buchungsstapel: read back as DATEV would import it, and checked against the month's movements.

The import is emulated as DATEV does it: each row debits (S) or credits (H) its Konto and the opposite on the
Gegenkonto; on a taxed Gegenkonto DATEV splits the VAT out of the gross (automatic account without a key, or
BU key 3/2), half-up, onto the VAT account of that rate; key 40 splits nothing. The per-account result must be
the G/L report's movements of the month to the cent, so no VAT is lost or doubled.
"""

from __future__ import annotations

import asyncio
import csv
import io
import threading
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import ledger.datev
from ledger.datev import COLUMNS
from ledger.money import vat_from_gross
from tests.conftest import Simulator, Tenant
from tests.e2e.amazon import item, make_shop
from tests.e2e.test_desk_cli import kontor

SETTINGS = {"consultant_number": 1234567, "client_number": 4711, "fiscal_year_start_month": 7, "account_length": 4}
AMOUNT, KONTO, GEGEN, KEY = "Umsatz (ohne Soll/Haben-Kz)", "Konto", "Gegenkonto (ohne BU-Schlüssel)", "BU-Schlüssel"


def minor(text: str) -> int:
    return int(Decimal(text.replace(",", ".")) * 100)


def read_datev(body: bytes) -> tuple[list[str], list[dict[str, str]]]:
    text = body.decode("cp1252")
    assert text.endswith("\r\n")
    assert "\n" not in text.replace("\r\n", "")  # CRLF only
    header, columns, *rows = csv.reader(io.StringIO(text, newline=""), delimiter=";", quotechar='"')
    assert columns == COLUMNS
    assert all(len(r) == len(COLUMNS) for r in rows)
    return header, [dict(zip(columns, r, strict=True)) for r in rows]


def import_like_datev(rows: list[dict[str, str]], accounts: list[dict[str, Any]], automatic: bool) -> dict[str, int]:
    """Net movement (debit - credit) per DATEV account number after DATEV's VAT automatics."""
    number = {a["number"]: a["alt_number"] or a["number"] for a in accounts}
    rate_of = {number[a["number"]]: Decimal(a["vat_rate"]) for a in accounts
               if a["vat_rate"] and not (a["role"] or "").startswith("VAT_")}  # fmt: skip
    vat_account = {Decimal(a["vat_rate"]): number[a["number"]] for a in accounts
                   if (a["role"] or "").startswith("VAT_") and a["vat_rate"]}  # fmt: skip
    keys = {"3": Decimal(19), "2": Decimal(7)}
    net: dict[str, int] = defaultdict(int)
    for r in rows:
        amount, sign = minor(r[AMOUNT]), (1 if r["Soll/Haben-Kennzeichen"] == "S" else -1)
        net[r[KONTO]] += sign * amount
        rate = rate_of.get(r[GEGEN])
        split = rate is not None and ((automatic and r[KEY] == "") or keys.get(r[KEY]) == rate)
        tax = vat_from_gross(amount, rate) if split and rate is not None else 0
        if split and rate is not None:
            net[vat_account[rate]] -= sign * tax
        net[r[GEGEN]] -= sign * (amount - tax)
    return {k: v for k, v in net.items() if v}


async def books(t: Tenant) -> None:
    r = await t.client.patch(t.url("/accounts/8400"), headers=t.headers(), json={"alt_number": "8409"})
    assert r.status_code == 200, r.text

    async def post(lines: list[tuple[str, str, str]], day: str, text: str, ref: str | None = None) -> None:
        body = [{"account": a, ("debit" if side == "D" else "credit"): amount} for a, side, amount in lines]
        for line, (account, _, _) in zip(body, lines, strict=True):
            if account == "1400":
                line["customer"] = "C-1"
        extra = {"reference": ref} if ref else {}
        posted = await t.post_entry(body, date=day, description=text, **extra)
        assert posted.status_code == 201, posted.text

    await post([("1400", "D", "119.00"), ("8400", "C", "100.00"), ("1776", "C", "19.00")], "2026-10-05",
               "Rechnung Müller", "INV-1/Ä")  # fmt: skip
    await post([("1400", "D", "172.50"), ("8400", "C", "100.00"), ("1776", "C", "19.00"), ("8300", "C", "50.00"),
                ("1771", "C", "3.50")], "2026-10-06", "Rechnung 19 % und 7 %")  # fmt: skip
    # VAT that is not DATEV's tax on the gross (10.00 x 19/119 = 1.60): no folding, key 40 and a VAT row
    await post([("1400", "D", "10.00"), ("8400", "C", "8.41"), ("1776", "C", "1.59")], "2026-10-07", "Krumm")
    await post([("1200", "D", "50.00"), ("8400", "C", "50.00")], "2026-10-08", "Erlös ohne Steuer")
    await post([("8720", "D", "10.00"), ("1776", "D", "1.90"), ("1400", "C", "11.90")], "2026-10-09",
               'Gutschrift "Kulanz"; Müller')  # fmt: skip
    await post([("1200", "D", "119.00"), ("1400", "C", "119.00")], "2026-10-31", "Zahlung")
    # QA14 #2: a credit moved from C-1 to C-2 on the collective account moves no DATEV account: no row (DATEV
    # refuses Konto = Gegenkonto), and the import still gives the month's movements
    moved = await t.post_entry([{"account": "1400", "customer": "C-2", "debit": "50.00"},
                                {"account": "1400", "customer": "C-1", "credit": "50.00"}],
                               date="2026-10-31", description="Umbuchung", reference="UB-1")  # fmt: skip
    assert moved.status_code == 201, moved.text
    await post([("1200", "D", "1.00"), ("1400", "C", "1.00")], "2026-11-01", "November: not in the file")


async def month_movements(t: Tenant) -> tuple[list[dict[str, Any]], dict[str, int]]:
    accounts = (await t.get("/accounts")).json()
    number = {a["number"]: a["alt_number"] or a["number"] for a in accounts}
    gl = (await t.get("/periods/2026-10/gl-report", key=t.accountant_key)).json()
    moved = {number[r["account"]]: minor(r["debit"]) - minor(r["credit"]) for r in gl["rows"]}
    return accounts, {k: v for k, v in moved.items() if v}


async def test_the_buchungsstapel_imports_to_the_months_movements(tenant: Tenant) -> None:
    t = tenant
    await books(t)
    missing = await t.get("/periods/2026-10/datev", key=t.accountant_key)
    assert (missing.status_code, missing.json()["code"]) == (409, "datev_settings_missing")
    put = await t.client.put(t.url("/datev/settings"), json=SETTINGS, headers=t.headers(t.accountant_key))
    assert put.status_code == 200, put.text
    assert put.json() | {"updated_at": None} == {**SETTINGS, "automatic_accounts": True, "updated_at": None}

    r = await t.get("/periods/2026-10/datev", key=t.accountant_key)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=windows-1252"
    assert r.headers["content-disposition"] == 'attachment; filename="EXTF_Buchungsstapel_1001_2026-10.csv"'
    header, rows = read_datev(r.content)
    assert header[:5] == ["EXTF", "700", "21", "Buchungsstapel", "13"]
    assert len(header[5]) == 17
    assert header[5].isdigit()
    assert header[10:16] == ["1234567", "4711", "20260701", "4", "20261001", "20261031"]
    assert (header[16], header[20], header[21], header[26]) == ("Kontor 1001 2026-10", "0", "EUR", "03")

    # one gross row per invoice and rate; the odd VAT stays a row with key 40 on the revenue
    shown = [(r[AMOUNT], r["Soll/Haben-Kennzeichen"], r[KONTO], r[GEGEN], r[KEY], r["Belegdatum"]) for r in rows]
    assert shown == [
        ("119,00", "S", "1400", "8409", "", "0510"),
        ("119,00", "S", "1400", "8409", "", "0610"),
        ("53,50", "S", "1400", "8300", "", "0610"),
        ("8,41", "S", "1400", "8409", "40", "0710"),
        ("1,59", "S", "1400", "1776", "", "0710"),
        ("50,00", "S", "1200", "8409", "40", "0810"),
        ("11,90", "H", "1400", "8720", "", "0910"),
        ("119,00", "S", "1200", "1400", "", "3110"),
    ]
    assert [r for r in rows if r[KONTO] == r[GEGEN] or r["Belegfeld 1"] == "UB-1"] == []
    assert rows[0]["Belegfeld 1"] == "INV-1/"  # DATEV's characters only
    assert rows[0]["Buchungstext"] == "Rechnung Müller"  # Windows-1252 holds the umlaut
    assert rows[6]["Buchungstext"] == 'Gutschrift "Kulanz"; Müller'
    assert (rows[0]["Zusatzinformation - Art 2"], rows[0]["Zusatzinformation - Inhalt 2"]) == ("Kunde", "C-1")
    assert rows[5]["Zusatzinformation - Art 2"] == ""  # no customer on bank and revenue
    assert rows[1]["Belegfeld 1"] == rows[1]["Zusatzinformation - Inhalt 1"]  # no reference: the entry id

    accounts, moved = await month_movements(t)
    assert import_like_datev(rows, accounts, automatic=True) == moved
    assert moved["1776"] == -(1900 + 1900 + 159 - 190)

    # without automatic accounts: the same rows carry BU keys 3 and 2, and the import still gives the books
    settings = {**SETTINGS, "automatic_accounts": False}
    assert (await t.client.put(t.url("/datev/settings"), json=settings, headers=t.headers())).status_code == 200
    _, keyed = read_datev((await t.get("/periods/2026-10/datev", key=t.accountant_key)).content)
    assert [r[KEY] for r in keyed] == ["3", "3", "2", "", "", "", "3", ""]
    assert import_like_datev(keyed, accounts, automatic=False) == moved

    # a closed month is written as fixed (Festschreibung), and the G/L report's DATEV format is this file
    assert (
        await t.post("/periods/2026-10/close", {"reason": "month end"}, key=t.accountant_key, idem=None)
    ).status_code == 200
    closed = await t.get("/periods/2026-10/gl-report", key=t.accountant_key, format="datev")
    assert closed.status_code == 200
    header, again = read_datev(closed.content)
    assert header[20] == "1"
    assert again == keyed


async def test_datev_settings_are_checked_and_accounts_must_fit(tenant: Tenant) -> None:
    t = tenant
    for bad, field in [
        ({**SETTINGS, "consultant_number": 1000}, "consultant_number"),
        ({**SETTINGS, "client_number": 100000}, "client_number"),
        ({**SETTINGS, "fiscal_year_start_month": 13}, "fiscal_year_start_month"),
        ({**SETTINGS, "account_length": 9}, "account_length"),
        ({**SETTINGS, "skr": "03"}, "skr"),
    ]:
        r = await t.client.put(t.url("/datev/settings"), json=bad, headers=t.headers())
        assert r.status_code in (400, 422), (bad, r.text)
        assert field in r.text
    missing = await t.get("/datev/settings")
    assert (missing.status_code, missing.json()["code"]) == (404, "datev_settings_not_found")
    poster = await t.client.put(t.url("/datev/settings"), json=SETTINGS, headers=t.headers(t.poster_key))
    assert poster.status_code == 403
    assert (await t.client.put(t.url("/datev/settings"), json=SETTINGS, headers=t.headers())).status_code == 200
    assert (await t.get("/datev/settings", key=t.poster_key)).json()["client_number"] == 4711
    # an account number DATEV cannot take is named, not silently cut
    r = await t.client.patch(t.url("/accounts/8400"), headers=t.headers(), json={"alt_number": "840000"})
    assert r.status_code == 200
    await t.sale("C-1", "119.00", "100.00", "19.00", date="2026-10-05")
    refused = await t.get("/periods/2026-10/datev")
    assert (refused.status_code, refused.json()["code"]) == (422, "datev_account_invalid")
    assert "840000" in refused.json()["detail"]
    assert (await t.get("/periods/2026-13/datev")).status_code == 422  # as the G/L report: no such month


async def test_kontor_export_datev_over_the_api_and_from_the_database(
    tenant: Tenant, app_url: str, database_url: str, tmp_path: Path
) -> None:
    t = tenant
    await books(t)
    assert (await t.client.put(t.url("/datev/settings"), json=SETTINGS, headers=t.headers())).status_code == 200
    api_file, db_file = tmp_path / "api.csv", tmp_path / "db.csv"
    code, _, err = await kontor("export", "datev", "--business", "1001", "--period", "2026-10", "-o", str(api_file),
                                "--url", app_url, "--key", t.accountant_key)  # fmt: skip
    assert code == 0, err
    assert "8 bookings of 2026-10 written to" in err
    code, _, err = await kontor("export", "datev", "--business", "1001", "--period", "2026-10", "-o", str(db_file),
                                "--merchant", str(t.merchant_id), database_url=database_url)  # fmt: skip
    assert code == 0, err
    (api_header, api_rows), (db_header, db_rows) = read_datev(api_file.read_bytes()), read_datev(db_file.read_bytes())
    assert api_rows == db_rows
    assert api_header[:5] + api_header[6:] == db_header[:5] + db_header[6:]  # all but the creation time
    accounts, moved = await month_movements(t)
    assert import_like_datev(db_rows, accounts, automatic=True) == moved


async def test_orders_documents_are_belegfeld_1_and_the_order_belegfeld_2(tenant: Tenant, simulator: Simulator) -> None:
    """The invoice, credit-note (return) and goodwill numbers the payment service sends are the entries' references,
    so DATEV's Belegfeld 1; the order id is Belegfeld 2 (DATEV: 12 characters) and, whole, the Auftragsnummer."""
    shop = await make_shop(tenant, simulator)
    t = shop.tenant
    assert (await shop.create_order("order-4711-long-id", [item(1, "119.00"), item(2, "59.50")])).status_code == 201
    assert (
        await shop.invoice("order-4711-long-id", "RE-2026-0815", [1, 2], invoice_date="2026-11-21")
    ).status_code == 201
    r = await shop.document("order-4711-long-id", "returns", {
        "return_reference": "GS-2026-0001", "return_date": "2026-11-22", "invoice_reference": "RE-2026-0815",
        "reason": "CUSTOMER_RETURN", "items": [{"item_reference": 2}]})  # fmt: skip
    assert r.status_code == 201, r.text
    g = await shop.document("order-4711-long-id", "goodwills", {
        "goodwill_reference": "KU-2026-0007", "goodwill_date": "2026-11-23", "reason": "CUSTOMER_COMPLAINT",
        "gross_amount": "11.90"})  # fmt: skip
    assert g.status_code == 201, g.text
    entries = (await t.get("/entries", order_reference="order-4711-long-id")).json()["items"]
    by_reference = {e["reference"]: e for e in entries}
    assert {"RE-2026-0815", "GS-2026-0001", "KU-2026-0007"} <= set(by_reference)
    assert {e["order_reference"] for e in entries} == {"order-4711-long-id"}
    invoice = (await t.get("/entries", reference="RE-2026-0815")).json()["items"]
    assert [e["metadata"] for e in invoice] == [{"invoice": "RE-2026-0815"}]
    register = (await t.get("/accounts/8400/register", key=t.accountant_key)).json()["rows"]
    assert ("RE-2026-0815", "order-4711-long-id") in {(r["reference"], r["order_reference"]) for r in register}

    assert (await t.client.put(t.url("/datev/settings"), json=SETTINGS, headers=t.headers())).status_code == 200
    _, rows = read_datev((await t.get("/periods/2026-11/datev", key=t.accountant_key)).content)
    documents = {r["Belegfeld 1"]: r for r in rows}
    for number in ("RE-2026-0815", "GS-2026-0001", "KU-2026-0007"):
        assert documents[number]["Belegfeld 2"] == "order-4711-l"  # DATEV's 12 characters
        assert documents[number]["Auftragsnummer"] == "order-4711-long-id"
    assert documents["RE-2026-0815"][AMOUNT] == "178,50"
    assert all(r["Belegfeld 2"] == "order-4711-l" for r in rows)  # the capture and the refunds name the order too


async def test_the_service_keeps_answering_while_a_months_datev_file_is_built(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kind 3: a month of thousands of entries was turned into its DATEV file on the event loop, and /health of
    every merchant waited for it (1.9 s for 30,000 entries). The file must be built in another thread than the
    event loop's, and /health must answer meanwhile (the test's client and the service share one loop). No bound
    on pauses: what the machine does besides says nothing about where the file is built."""
    built_in: list[int] = []
    build = ledger.datev._file

    def observed(*args: Any, **kwargs: Any) -> Any:
        built_in.append(threading.get_ident())
        return build(*args, **kwargs)

    monkeypatch.setattr(ledger.datev, "_file", observed)
    t = tenant
    assert (await t.client.put(t.url("/datev/settings"), json=SETTINGS, headers=t.headers())).status_code == 200
    line = {"account": "1400", "customer": "C-1", "debit": "119.00"}
    entry = {
        "effective_date": "2026-11-10",
        "description": "Rechnung",
        "lines": [line, {"account": "8400", "credit": "100.00"}, {"account": "1776", "credit": "19.00"}],
    }
    for chunk in range(8):
        r = await t.post("/entries/batch", {"entries": [{**entry, "reference": f"R-{chunk}-{n}"} for n in range(500)]})
        assert r.status_code == 201, r.text
    exporting = True
    answered: list[float] = []

    async def probe() -> None:
        while exporting:
            assert (await t.client.get("/health")).status_code == 200
            answered.append(time.perf_counter())
            await asyncio.sleep(0.005)

    prober = asyncio.create_task(probe())
    began = time.perf_counter()
    r = await t.client.get(t.url("/periods/2026-11/datev"), headers=t.headers(t.accountant_key))
    ended = time.perf_counter()
    exporting = False
    await prober
    assert r.status_code == 200, r.text[:300]
    assert r.content.count(b"\r\n") == 2 + 4000  # header, column names, one row per entry
    assert len(built_in) == 1
    assert built_in[0] != threading.get_ident(), "the DATEV file was built on the event loop"
    during = [when for when in answered if began <= when <= ended]
    assert len(during) >= 3, f"/health answered {len(during)} times in the {ended - began:.2f} s of the export"

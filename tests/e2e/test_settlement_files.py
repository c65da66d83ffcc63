"""Settlement reports as they really arrive: re-saved by a spreadsheet, sent as a form upload, large enough to
stall the service if parsed on its event loop, with more unknown rows than one journal entry can park."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import payments.settlement
from tests.conftest import Simulator, Tenant, make_tenant
from tests.e2e.amazon import Shop, make_shop
from tests.e2e.test_reconciliation import exceptions, hand_report, upload_settlement

DATA = Path(__file__).parent.parent / "data"
EXCEL_REPORT = DATA / "settlement_excel_semicolon.csv"  # SellerId ABCDEFGHIJKLM, USD, ';' and decimal commas


@pytest.fixture
async def shop(tenant: Tenant, simulator: Simulator) -> Shop:
    return await make_shop(tenant, simulator)


@pytest.fixture
async def usd_shop(app_client: httpx.AsyncClient, simulator: Simulator) -> Shop:
    tenant = await make_tenant(app_client, businesses=[{"code": 1001, "country": "US", "currency": "USD"}])
    return await make_shop(tenant, simulator, region="na", currency="USD")


def excel_report(shop: Shop) -> bytes:
    """The real file as German Excel saved it, with the test shop's SellerId in place of the original one."""
    return EXCEL_REPORT.read_bytes().replace(b"ABCDEFGHIJKLM", shop.merchant_id.encode())


async def test_a_report_resaved_by_german_excel_is_read(usd_shop: Shop) -> None:
    report = excel_report(usd_shop)
    assert b";" in report
    assert b"-25,54" in report
    assert b'"' not in report
    r = await upload_settlement(usd_shop, report)
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["settlement_id"], out["currency"], out["rows"]) == ("5984869004", "USD", 2)
    assert out["totals"] == {"Capture": "10.00", "Transfer": "-25.54", "fees": "-0.59"}
    assert out["outcomes"] == {"exception": 1, "payout": 1}
    assert [(e["line"], e["kind"], e["amount"]) for e in out["exceptions"]] == [(8, "unknown_capture", "10.00")]
    assert out["period_end"] == "2015-10-01T14:59:44-07:00"
    assert await usd_shop.balance("1360") == "25.54"  # the payout, in transit to the bank
    assert await usd_shop.balance("4970") == "0.59"
    again = await upload_settlement(usd_shop, report)
    assert (again.status_code, again.headers["Idempotent-Replayed"], again.json()) == (201, "true", out)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"PK\x03\x04" + bytes(60), "Excel workbook (XLSX)"),
        (b"%PDF-1.7\n" + bytes(60), "a PDF document"),
        (b"Datum;Betrag\n01.10.2015;10,00\n", "no column header row (TransactionPostedDate"),
        (b"", "the file is empty"),
    ],
)
async def test_a_file_that_is_no_settlement_report_is_refused_for_what_it_is(
    shop: Shop, body: bytes, says: str
) -> None:
    r = await upload_settlement(shop, body)
    assert (r.status_code, r.json()["code"]) == (422, "invalid_settlement_report")
    assert says in r.json()["detail"]
    assert "SellerId" not in r.text


async def test_semicolon_report_with_a_thousands_separator_names_line_and_column(usd_shop: Shop) -> None:
    report = excel_report(usd_shop).replace(b";10,00;-0,29;-0,30;-0,59;9,41", b";1.010,00;-0,29;-0,30;-0,59;1.009,41")
    r = await upload_settlement(usd_shop, report)
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "line 8, column TransactionAmount"), r.text
    assert "decimal separator" in r.json()["errors"][0]["message"]


async def test_a_form_upload_is_the_file_it_carries(shop: Shop) -> None:
    """`curl -F file=@report.csv`: the file part is the report (its digest too, whatever the boundary)."""
    t = shop.tenant
    url, key = t.url("/amazon-pay/settlements"), t.headers(t.poster_key)
    report = hand_report(shop.merchant_id, "FORM-0001", [("Adjustment", "", "", "", "5.00", "0.00")]).encode()
    first = await t.client.post(url, files={"file": ("report.csv", report, "text/csv")}, headers=key)
    assert first.status_code == 201, first.text
    assert first.json()["outcomes"] == {"exception": 1}
    again = await t.client.post(url, files={"file": ("report.csv", report, "application/octet-stream")}, headers=key)
    assert (again.status_code, again.headers["Idempotent-Replayed"], again.json()) == (201, "true", first.json())
    raw = await upload_settlement(shop, report)
    assert (raw.status_code, raw.headers["Idempotent-Replayed"], raw.json()) == (201, "true", first.json())


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code", "field"),
    [
        (
            {"content": b'{"a": 1}', "headers": {"Content-Type": "application/json"}},
            415,
            "unsupported_media_type",
            "Content-Type",
        ),
        ({"files": {"file": ("r.pdf", b"%PDF", "application/pdf")}}, 415, "unsupported_media_type", "Content-Type"),
        (
            {"files": [("a", ("a.csv", b"x", "text/csv")), ("b", ("b.csv", b"y", "text/csv"))]},
            422,
            "upload_invalid",
            "file",
        ),
        (
            {"content": b"--x\r\n\r\nno end", "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
            422,
            "upload_invalid",
            "file",
        ),
    ],
)
async def test_uploads_of_another_type_or_shape_are_refused_naming_what_is_expected(
    shop: Shop, request_kwargs: dict[str, Any], status: int, code: str, field: str
) -> None:
    t = shop.tenant
    kwargs: dict[str, Any] = dict(request_kwargs)
    headers = t.headers(t.poster_key) | kwargs.pop("headers", {})
    r = await t.client.post(t.url("/amazon-pay/settlements"), headers=headers, **kwargs)
    assert (r.status_code, r.json()["code"], r.json()["errors"][0]["field"]) == (status, code, field), r.text
    if status == 415:
        assert "text/csv" in r.json()["detail"]


async def test_any_number_of_unknown_rows_is_parked(shop: Shop) -> None:
    """security-15: 100 or more rows the ledger cannot match used to make the report unimportable (one parking
    entry with a line per exception hit the 100-line limit of an entry). Each row is parked by an entry of its
    own now (nothing netted), posted in batches."""
    count = 250
    rows = [
        ("Capture", f"S02-7{i:06d}-1234567-C000001", f"X-{i}-a1-c", f"S02-7{i:06d}-1234567", "10.00", "-0.54")
        for i in range(count)
    ]
    r = await upload_settlement(shop, hand_report(shop.merchant_id, "MANY-0001", rows))
    assert r.status_code == 201, r.text
    assert (r.json()["exception_count"], r.json()["outcomes"]) == (count, {"exception": count})
    assert await shop.balance("1590") == f"-{count * 10}.00"  # every row's amount parked in SUSPENSE
    parked = (
        await shop.tenant.get("/entries", reference="MANY-0001", metadata="reconciliation:settlement", limit="500")
    ).json()
    assert [len(e["lines"]) for e in parked["items"]] == [2] * count
    listed: list[dict[str, object]] = []
    after = "0"
    while after:
        page = await shop.tenant.get("/reconciliation/exceptions", limit="100", after=after)
        listed += page.json()["items"]
        after = str(page.json()["next_after"] or "")
    assert len(listed) == count
    trial = (await shop.tenant.get("/reports/trial-balance")).json()
    assert trial["balanced"] is True
    assert await exceptions(shop, source="bank") == []


def large_report(seller_id: str, rows: int) -> bytes:
    head = (
        '"Amazon Payments Advanced",\n"Settlement Report",\n'
        f'"SellerId","{seller_id}"\n'
        '"SettlementStartDate","2026-11-30T01:54:37 +0000"\n"SettlementEndDate","2026-11-30T01:54:54 +0000"\n'
        '"TransactionPostedDate","SettlementId","AmazonTransactionId","SellerReferenceId","TransactionType",'
        '"AmazonOrderReferenceId","SellerOrderId","StoreName","CurrencyCode","TransactionDescription",'
        '"TransactionAmount","TransactionPercentageFee","TransactionFixedFee","TotalTransactionFee",'
        '"NetTransactionAmount",\n'
    )
    row = (
        '"2026-11-30T01:54:37 +0000","ZZZZ000001","S02-5123363-3017968-C{:06d}","O-1-a1-c","Capture",'
        '"S02-5123363-3017968","O-1","","EUR","","50.00","-0.95","-0.35","-1.30","48.70",\n'
    )
    return (head + "".join(row.format(i) for i in range(rows))).encode()


async def test_the_service_keeps_answering_while_a_large_report_is_parsed(
    shop: Shop, app_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """security-03: the report was parsed on the event loop, and every other request of every merchant waited
    for it (an upload of another seller's report, refused after parsing, could be repeated at will). The parse
    must run in another thread than the event loop's, and /health must answer meanwhile (the test's client and
    the service share one event loop). No bound on pauses: a collection of the garbage a 100,000-row parse
    leaves can stop every thread for a while on a busy machine, which says nothing about where the parse runs."""
    parsed_in: list[int] = []
    parse = payments.settlement.parse_report

    def observed(*args: Any, **kwargs: Any) -> Any:
        parsed_in.append(threading.get_ident())
        return parse(*args, **kwargs)

    monkeypatch.setattr(payments.settlement, "parse_report", observed)
    body = large_report("AFOREIGNSELLER1", 100_000)  # about 17 MB
    uploading = asyncio.Event()
    answered: list[float] = []  # when each /health probe was answered

    async def probe() -> None:
        while uploading.is_set():
            assert (await app_client.get("/health")).status_code == 200
            answered.append(time.perf_counter())
            await asyncio.sleep(0.01)

    uploading.set()
    prober = asyncio.create_task(probe())
    began = time.perf_counter()
    r = await upload_settlement(shop, body)
    ended = time.perf_counter()
    uploading.clear()
    await prober
    assert (r.status_code, r.json()["code"]) == (422, "seller_mismatch")
    assert len(parsed_in) == 1
    assert parsed_in[0] != threading.get_ident(), "the report was parsed on the event loop"
    during = [when for when in answered if began <= when <= ended]
    assert len(during) >= 3, f"/health answered {len(during)} times in the {ended - began:.1f} s of the upload"


async def test_a_csv_body_is_still_read_with_any_generic_type(shop: Shop) -> None:
    report = hand_report(shop.merchant_id, "TYPE-0001", [("Adjustment", "", "", "", "1.00", "0.00")]).encode()
    t = shop.tenant
    for content_type in ("application/octet-stream", "application/x-www-form-urlencoded"):
        r = await t.client.post(
            t.url("/amazon-pay/settlements"),
            content=report,
            headers=t.headers(t.poster_key) | {"Content-Type": content_type},
        )
        assert r.status_code == 201, (content_type, r.text)

"""Bank statements as banks deliver them: batch entries carrying several payments, ZIP archives of CAMT files,
statements of several accounts that share a short Id, form uploads. The files are real (tests/data/README.md)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from payments.camt import MEMBERS_MAX, UNCOMPRESSED_BYTES_MAX
from tests.conftest import Simulator, Tenant, make_tenant
from tests.e2e.amazon import Shop, item, make_shop
from tests.e2e.test_reconciliation import exceptions

DATA = Path(__file__).parent.parent / "data"
BATCH = (DATA / "camt053_batch_two_payments.xml").read_bytes()  # CHF, one entry of 3483.00 = 2187.00 + 1296.00
BATCH_ZIP = (DATA / "camt053_batch_two_payments.zip").read_bytes()
STATEMENT_A = (DATA / "camt053_statement_8_account_a.xml").read_bytes()  # EUR, Id 8, account ...AAA, 2022-07-08
STATEMENT_B = (DATA / "camt053_statement_8_account_b.xml").read_bytes()  # EUR, Id 8, account ...BBB, 2023-07-10
INVOICES = {"302388292000011111111111111": "2187.00", "302388292000022222222222222": "1296.00"}


async def upload(shop: Shop, body: bytes, content_type: str = "application/xml", **kwargs: Any) -> httpx.Response:
    t = shop.tenant
    if "files" in kwargs:
        return await t.client.post(t.url("/bank-statements"), headers=t.headers(t.poster_key), **kwargs)
    headers = t.headers(t.poster_key) | {"Content-Type": content_type}
    return await t.client.post(t.url("/bank-statements"), content=body, headers=headers, **kwargs)


@pytest.fixture
async def shop(tenant: Tenant, simulator: Simulator) -> Shop:
    return await make_shop(tenant, simulator)


@pytest.fixture
async def swiss_shop(app_client: httpx.AsyncClient, simulator: Simulator) -> Shop:
    """A CHF business with the two open invoices the batch entry pays (their references are the file's)."""
    tenant = await make_tenant(app_client, businesses=[{"code": 1001, "country": "CH", "currency": "CHF"}])
    shop = await make_shop(tenant, simulator, currency="CHF")
    for n, (reference, gross) in enumerate(INVOICES.items(), start=1):
        assert (await shop.create_order(f"ch-{n}", [item(1, gross, vat="8.1")])).status_code == 201
        assert (await shop.invoice(f"ch-{n}", reference, [1])).status_code == 201
    return shop


def expected_payments() -> list[tuple[str, int, int | None, str, str, str | None]]:
    return [
        ("20170323123456789099999", 1, n, amount, "payment", f"invoice {reference}")
        for n, (reference, amount) in enumerate(INVOICES.items(), start=1)
    ]


def payments_of(out: dict[str, Any]) -> list[tuple[str, int, int | None, str, str, str | None]]:
    return [(x["statement_id"], x["entry"], x["detail"], x["amount"], x["outcome"], x["match"]) for x in out["lines"]]


async def test_a_batch_entry_is_split_into_its_payments_and_each_is_matched(swiss_shop: Shop) -> None:
    """files-03: one bank entry of 3483.00 carries two payments; each names its invoice and must match it
    (before, the entry was one line that matched neither amount and became one exception)."""
    r = await upload(swiss_shop, BATCH)
    assert r.status_code == 201, r.text
    assert payments_of(r.json()) == expected_payments()
    assert r.json()["exception_count"] == 0
    (statement,) = r.json()["statements"]
    assert {k: statement[k] for k in ("account", "statement_id", "statement_date", "sequence", "movements")} == {
        "account": "CH0000000000000000001",
        "statement_id": "20170323123456789099999",
        "statement_date": "2017-03-23",
        "sequence": 58,
        "movements": "3483.00",
    }
    assert [(c["check"], c["outcome"]) for c in statement["checks"]] == [
        ("opening_balance", "skipped"),
        ("closing_balance", "skipped"),
        ("ledger_balance", "skipped"),
    ]  # the file gives no balances
    assert [(x["counterparty_name"], x["reference"]) for x in r.json()["lines"]] == [
        ("Payer A", "20170323001234567891234567891234/1"),
        ("Payer B", "20170323001234567891234567891234/2"),
    ]
    assert await swiss_shop.balance("1200") == "3483.00"
    trial = (await swiss_shop.tenant.get("/reports/trial-balance")).json()
    assert trial["balanced"] is True


async def test_a_zip_of_camt_files_is_read_and_is_the_same_statement_as_the_xml(swiss_shop: Shop) -> None:
    """files-04: the statement zipped, as a form upload; the plain XML afterwards is the same statement (200)."""
    zipped = await upload(swiss_shop, b"", files={"file": ("camt053.zip", BATCH_ZIP, "application/zip")})
    assert zipped.status_code == 201, zipped.text
    assert payments_of(zipped.json()) == expected_payments()
    again = await upload(swiss_shop, BATCH)
    assert (again.status_code, again.headers.get("Idempotent-Replayed"), again.json()) == (201, "true", zipped.json())
    assert await swiss_shop.balance("1200") == "3483.00"  # booked once


def make_zip(*members: tuple[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members:
            archive.writestr(name, content)
    return out.getvalue()


def bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("big.xml", "w") as member:
        chunk = bytes(1024 * 1024)
        for _ in range(UNCOMPRESSED_BYTES_MAX // len(chunk) + 1):
            member.write(chunk)
    return out.getvalue()


def encrypted() -> bytes:
    """A member flagged as encrypted (zipfile cannot write one): bit 0 of its general purpose flags."""
    data = bytearray(make_zip(("secret.xml", STATEMENT_A)))
    data[6] |= 0x1  # the local file header's flags
    data[data.find(b"PK\x01\x02") + 8] |= 0x1  # the central directory's
    return bytes(data)


@pytest.mark.parametrize(
    ("archive", "field", "says"),
    [
        (lambda: make_zip(("../../etc/camt.xml", STATEMENT_A)), "../../etc/camt.xml", "'..'"),
        (lambda: make_zip(("/abs/camt.xml", STATEMENT_A)), "'/abs/camt.xml'", "absolute path"),
        (lambda: make_zip(("a\\camt.xml", STATEMENT_A)), "'a\\\\camt.xml'", "backslashes"),
        (lambda: make_zip(("camt.xml", STATEMENT_A), ("inner.zip", BATCH_ZIP)), "inner.zip", "no nested archives"),
        (lambda: make_zip(("readme.txt", b"x")), "readme.txt", "only CAMT.053 .xml files"),
        (
            lambda: make_zip(*((f"{n}.xml", STATEMENT_A) for n in range(MEMBERS_MAX + 1))),
            "file",
            f"at most {MEMBERS_MAX}",
        ),
        (lambda: make_zip(*((f"{n}/", b"") for n in range(5_000))), "file", "holds 5000 entries"),
        (make_zip, "file", "holds no file"),
        (encrypted, "secret.xml", "encrypted"),
        (bomb, "file", "unpacks to more than"),
        (lambda: b"PK\x03\x04" + bytes(100), "file", "not a readable ZIP archive"),
        (lambda: make_zip(("camt.xml", b"<Document>")), "camt.xml: line 1, column 11", "not well-formed XML"),
    ],
)
async def test_zip_archives_are_read_within_bounds_or_refused_saying_why(
    shop: Shop, archive: Any, field: str, says: str
) -> None:
    r = await upload(shop, archive(), "application/zip")
    assert (r.status_code, r.json()["code"]) == (422, "invalid_bank_statement"), r.text
    assert r.json()["errors"][0]["field"] == field
    assert says in r.json()["errors"][0]["message"]
    assert await shop.balance("1200") == "0.00"


async def test_macos_metadata_in_a_zip_is_skipped(shop: Shop) -> None:
    r = await upload(shop, make_zip(("camt/a.xml", STATEMENT_A), ("__MACOSX/camt/._a.xml", b"\x00\x05\x16\x07")))
    assert r.status_code == 201, r.text
    assert [x["outcome"] for x in r.json()["lines"]] == ["exception"]


async def test_statements_of_two_accounts_with_the_same_id_are_both_imported(shop: Shop) -> None:
    """files-07a/07b: a statement's identity is account + Id + date, not the (short, per account) Id alone."""
    a = await upload(shop, STATEMENT_A)
    assert a.status_code == 201, a.text
    b = await upload(shop, STATEMENT_B)
    assert b.status_code == 201, b.text  # was 409 statement_conflict
    same_day = STATEMENT_A.replace(b"RDEEURTESTBANKAAA", b"RDEEURTESTBANKCCC").replace(b"SC108", b"SC308")
    assert (await upload(shop, same_day)).status_code == 201  # same Id and date, third account
    next_year = STATEMENT_A.replace(b"2022-07-08", b"2023-07-08")
    assert (await upload(shop, next_year)).status_code == 201  # same account and Id, another statement date
    assert await shop.balance("1200") == "-400.00"
    sources = sorted(e["source_reference"] for e in await exceptions(shop, source="bank"))
    assert sources == [
        "RDEEURTESTBANKAAA/8/2022-07-08",
        "RDEEURTESTBANKAAA/8/2023-07-08",
        "RDEEURTESTBANKBBB/8/2023-07-10",
        "RDEEURTESTBANKCCC/8/2022-07-08",
    ]

    replay = await upload(shop, STATEMENT_A)
    assert (replay.status_code, replay.headers["Idempotent-Replayed"], replay.json()) == (201, "true", a.json())
    regenerated = STATEMENT_A.replace(b"15:36:02.218", b"09:00:00.000")  # the same statement, downloaded again
    assert (await upload(shop, regenerated)).headers["Idempotent-Replayed"] == "true"
    changed = STATEMENT_A.replace(b"100.00", b"100.01")
    conflict = await upload(shop, changed)
    assert (conflict.status_code, conflict.json()["code"]) == (409, "statement_conflict")
    assert "RDEEURTESTBANKAAA" in conflict.json()["detail"]
    both = make_zip(("a.xml", STATEMENT_A), ("b.xml", STATEMENT_B))  # each imported before, by its own upload
    assert (await upload(shop, both)).status_code == 409
    assert await shop.balance("1200") == "-400.00"


async def test_statements_imported_before_they_had_an_identity_keep_their_id(shop: Shop, pool: asyncpg.Pool) -> None:
    """Rows from before account and date were recorded (account '') still claim their Id: the same file replays,
    another file with that Id is refused rather than booked a second time."""
    stored = {"statement_ids": ["8"], "currency": "EUR", "lines": [], "exception_count": 0, "exceptions": []}
    await pool.execute(
        "INSERT INTO bank_statements (merchant_id, business, account, statement_id, statement_on, file_sha256, "
        "summary) VALUES ($1, $2, '', '8', '2024-01-31', $3, $4)",
        shop.tenant.merchant_id,
        shop.tenant.business,
        hashlib.sha256(STATEMENT_A).digest(),
        stored,
    )
    replay = await upload(shop, STATEMENT_A)
    assert (replay.status_code, replay.headers["Idempotent-Replayed"], replay.json()["statement_ids"]) == (
        201,
        "true",
        ["8"],
    )
    other = await upload(shop, STATEMENT_B)
    assert (other.status_code, other.json()["code"]) == (409, "statement_conflict")
    assert await shop.balance("1200") == "0.00"


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"content_type": "application/json"}, 415, "unsupported_media_type"),
        ({"files": {"file": ("s.csv", STATEMENT_A, "text/csv")}}, 415, "unsupported_media_type"),
        ({"files": {"file": ("s.xml", STATEMENT_A, "text/xml")}}, 201, None),
    ],
)
async def test_statement_uploads_of_another_type_are_refused_naming_the_expected_ones(
    shop: Shop, kwargs: dict[str, Any], status: int, code: str | None
) -> None:
    r = await upload(shop, STATEMENT_A, **kwargs)
    assert r.status_code == status, r.text
    if code is not None:
        assert (r.json()["code"], r.json()["errors"][0]["field"]) == (code, "Content-Type")
        assert "application/xml" in r.json()["detail"]

"""The journal over HTTP: posting, idempotency, validation errors, listing, reversal, batches.

Each refusal is checked twice: the problem+json names the field and the rule, and the database holds
exactly what it held before the request.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import Tenant

SALE = [
    {"account": "1400", "customer": "C-1", "debit": "119.00"},
    {"account": "8400", "credit": "100.00"},
    {"account": "1776", "credit": "19.00"},
]


async def entry_count(pool: asyncpg.Pool, t: Tenant) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM entries WHERE merchant_id = $1", t.merchant_id))


async def test_post_returns_the_entry_and_get_returns_the_same(tenant: Tenant) -> None:
    r = await tenant.post_entry(
        SALE,
        date="2026-11-27",
        description="Order 42",
        reference="order-42",
        metadata={"channel": "web", "order": "42"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["business"] == 1001
    assert body["effective_date"] == "2026-11-27"
    assert body["reference"] == "order-42"
    assert body["metadata"] == {"channel": "web", "order": "42"}
    assert body["reverses"] is None
    assert body["reversed_by"] is None
    assert [(ln["account"], ln["debit"], ln["credit"], ln["currency"]) for ln in body["lines"]] == [
        ("1400", "119.00", None, "EUR"),
        ("8400", None, "100.00", "EUR"),
        ("1776", None, "19.00", "EUR"),
    ]
    fetched = await tenant.get(f"/entries/{body['id']}")
    assert fetched.json() == body


async def test_same_key_same_body_replays_the_original(pool: asyncpg.Pool, tenant: Tenant) -> None:
    key = str(uuid.uuid4())
    first = await tenant.post_entry(SALE, idem=key)
    again = await tenant.post_entry(SALE, idem=key)
    assert again.status_code == 201
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert await entry_count(pool, tenant) == 1


async def test_same_key_other_body_is_refused(pool: asyncpg.Pool, tenant: Tenant) -> None:
    key = str(uuid.uuid4())
    await tenant.post_entry(SALE, idem=key)
    other = await tenant.post_entry(SALE, idem=key, description="something else")
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    # the same key on another route is another request too
    reversal = await tenant.post("/entries/1/reversal", {}, idem=key)
    assert reversal.status_code == 422
    assert await entry_count(pool, tenant) == 1


async def test_idempotency_key_is_required_and_validated(pool: asyncpg.Pool, tenant: Tenant) -> None:
    missing = await tenant.post_entry(SALE, idem=None)
    assert missing.status_code == 400
    assert "Idempotency-Key" in missing.text
    bad = await tenant.post_entry(SALE, idem="has spaces in it")
    assert bad.status_code == 400
    assert await entry_count(pool, tenant) == 0


def line(account: str, side: str, amount: Any, **extra: Any) -> dict[str, Any]:
    return {"account": account, side: amount, **extra}


@pytest.mark.parametrize(
    ("lines", "status", "code", "field"),
    [
        ([line("1200", "debit", "1.001"), line("8400", "credit", "1.001")], 422, "entry_invalid", "lines[0].debit"),
        (
            [line("1200", "debit", "100"), line("8400", "credit", "5", currency="JPY"), line("8400", "credit", "100")],
            422,
            "entry_unbalanced",
            "lines",
        ),
        ([line("1200", "debit", "1.00"), line("8400", "credit", "2.00")], 422, "entry_unbalanced", "lines"),
        ([line("1200", "debit", "1.00"), line("9999", "credit", "1.00")], 422, "entry_invalid", "lines[1].account"),
        (
            [line("1400", "debit", "1.00"), line("8400", "credit", "1.00")],
            422,
            "line_customer_invalid",
            "lines[0].customer",
        ),
        (
            [line("1200", "debit", "1.00", customer="C-1"), line("8400", "credit", "1.00")],
            422,
            "line_customer_invalid",
            "lines[0].customer",
        ),
        (
            [{"account": "1200", "debit": "1.00", "credit": "1.00"}, line("8400", "credit", "1.00")],
            422,
            "entry_invalid",
            "lines[0]",
        ),
        ([{"account": "1200"}, line("8400", "credit", "1.00")], 422, "entry_invalid", "lines[0]"),
        ([line("1200", "debit", "0.00"), line("8400", "credit", "0.00")], 422, "entry_invalid", "lines[0].debit"),
        ([line("1200", "debit", "NaN"), line("8400", "credit", "1.00")], 400, "request_invalid", "lines[0].debit"),
        ([line("1200", "debit", "Infinity"), line("8400", "credit", "1.00")], 400, "request_invalid", "lines[0].debit"),
        ([line("1200", "debit", "-1.00"), line("8400", "credit", "-1.00")], 400, "request_invalid", "lines[0].debit"),
        ([line("1200", "debit", 1.5), line("8400", "credit", "1.50")], 400, "request_invalid", "lines[0].debit"),
        ([line("1200", "debit", "1e2"), line("8400", "credit", "100")], 400, "request_invalid", "lines[0].debit"),
        ([line("1200", "debit", "1.00")], 400, "request_invalid", "lines"),
        (
            [line("1200", "debit", "1.00", note="x"), line("8400", "credit", "1.00")],
            400,
            "request_invalid",
            "lines[0].note",
        ),
        (
            [line("1200", "debit", "1.00", currency="XAU"), line("8400", "credit", "1.00", currency="XAU")],
            422,
            "entry_invalid",
            "lines[0].currency",
        ),
    ],
)
async def test_bad_entries_are_refused_and_change_nothing(
    pool: asyncpg.Pool, tenant: Tenant, lines: list[Any], status: int, code: str, field: str
) -> None:
    r = await tenant.post_entry(lines)
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["type"] == f"urn:kontor:problem:{code}"
    assert problem["status"] == status
    assert field in [e["field"] for e in problem["errors"]], problem
    assert await entry_count(pool, tenant) == 0
    assert await pool.fetchval("SELECT count(*) FROM balance_totals WHERE merchant_id = $1", tenant.merchant_id) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"effective_date": "2026-02-30", "description": "x", "lines": SALE},
        {"effective_date": "2026-11-27", "description": "", "lines": SALE},
        {"effective_date": "2026-11-27", "description": "x" * 501, "lines": SALE},
        {"effective_date": "2026-11-27", "description": "x", "lines": SALE, "merchant_id": 1},
        {"effective_date": "2026-11-27", "description": "x", "lines": SALE, "metadata": {"k": 1}},
        {
            "effective_date": "2026-11-27",
            "description": "x",
            "lines": SALE,
            "metadata": {f"k{i}": "v" for i in range(51)},
        },
        {"effective_date": "2026-11-27", "description": "x", "lines": [SALE[0]] * 101},
        {"description": "x", "lines": SALE},
    ],
)
async def test_malformed_bodies_get_400(pool: asyncpg.Pool, tenant: Tenant, body: dict[str, Any]) -> None:
    r = await tenant.post("/entries", body, key=tenant.poster_key)
    assert (r.status_code, r.json()["code"]) == (400, "request_invalid"), r.text
    assert r.json()["errors"]
    assert await entry_count(pool, tenant) == 0


async def test_not_json_at_all(tenant: Tenant) -> None:
    r = await tenant.client.post(
        tenant.url("/entries"),
        content=b"{not json",
        headers={**tenant.headers(tenant.poster_key, "k-1"), "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_fx_entry_balances_per_currency(tenant: Tenant) -> None:
    r = await tenant.post_entry(
        [
            line("1200", "debit", "92.00"),
            line("8400", "credit", "92.00"),
            line("1200", "debit", "100.00", currency="USD"),
            line("1590", "credit", "100.00", currency="USD"),
        ]
    )
    assert r.status_code == 201, r.text
    balance = (await tenant.get("/accounts/1200/balance")).json()["balances"]
    assert [(b["currency"], b["balance"], b["side"]) for b in balance] == [
        ("EUR", "92.00", "DEBIT"),
        ("USD", "100.00", "DEBIT"),
    ]
    trial = (await tenant.get("/reports/trial-balance")).json()
    assert trial["balanced"] is True
    assert [t["currency"] for t in trial["totals"]] == ["EUR", "USD"]


async def test_amounts_in_other_currencies_use_their_decimals(tenant: Tenant) -> None:
    ok = await tenant.post_entry(
        [line("1200", "debit", "500", currency="JPY"), line("1590", "credit", "500", currency="JPY")]
    )
    assert ok.status_code == 201
    assert ok.json()["lines"][0]["debit"] == "500"
    bad = await tenant.post_entry(
        [line("1200", "debit", "5.5", currency="JPY"), line("1590", "credit", "5.5", currency="JPY")]
    )
    assert bad.status_code == 422
    assert "more than 0 decimals" in bad.json()["errors"][0]["message"]


async def post_series(t: Tenant) -> list[dict[str, Any]]:
    out = []
    for i, (day, customer) in enumerate(
        [
            ("2026-11-01", "C-1"),
            ("2026-11-02", "C-2"),
            ("2026-11-03", "C-1"),
            ("2026-11-04", "C-3"),
            ("2026-11-05", "C-1"),
        ]
    ):
        out.append(
            await t.sale(
                customer,
                "119.00",
                "100.00",
                "19.00",
                date=day,
                reference=f"order-{i}",
                metadata={"order": str(i), "channel": "web" if i % 2 else "app"},
            )
        )
    return out


async def test_list_entries_filters(tenant: Tenant) -> None:
    posted = await post_series(tenant)
    ids = [e["id"] for e in posted]

    async def listed(**params: Any) -> list[int]:
        r = await tenant.get("/entries", **params)
        assert r.status_code == 200, r.text
        return [e["id"] for e in r.json()["items"]]

    assert await listed() == ids
    assert await listed(**{"from": "2026-11-02", "to": "2026-11-04"}) == ids[1:4]
    assert await listed(customer="C-1") == [ids[0], ids[2], ids[4]]
    assert await listed(reference="order-3") == [ids[3]]
    assert await listed(metadata="channel:web") == [ids[1], ids[3]]
    assert await listed(metadata=["channel:app", "order:4"]) == [ids[4]]
    assert await listed(account="8400") == ids
    assert await listed(account="1200") == []
    assert await listed(order="desc") == ids[::-1]
    bad = await tenant.get("/entries", metadata="novalue")
    assert bad.status_code == 400
    unknown = await tenant.get("/entries", account="9999")
    assert unknown.status_code == 404


async def test_list_entries_paginates_with_a_cursor(tenant: Tenant) -> None:
    posted = [e["id"] for e in await post_series(tenant)]
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await tenant.get("/entries", **params)).json()
        seen += [e["id"] for e in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == posted
    assert pages == 3
    for bad in ({"cursor": "garbage!"}, {"limit": 0}, {"limit": 501}):
        assert (await tenant.get("/entries", **bad)).status_code == 400


async def test_reversal_mirrors_links_both_ways_and_only_once(pool: asyncpg.Pool, tenant: Tenant) -> None:
    original = await tenant.sale("C-1", "119.00", "100.00", "19.00")
    key = str(uuid.uuid4())
    r = await tenant.post(
        f"/entries/{original['id']}/reversal", {"effective_date": "2026-11-27"}, key=tenant.poster_key, idem=key
    )
    assert r.status_code == 201, r.text
    reversal = r.json()
    assert reversal["reverses"] == original["id"]
    assert [(ln["account"], ln["debit"], ln["credit"], ln["customer"]) for ln in reversal["lines"]] == [
        ("1400", None, "119.00", "C-1"),
        ("8400", "100.00", None, None),
        ("1776", "19.00", None, None),
    ]
    assert (await tenant.get(f"/entries/{original['id']}")).json()["reversed_by"] == reversal["id"]
    # a retry with the same key replays the reversal; a new attempt is refused
    replay = await tenant.post(
        f"/entries/{original['id']}/reversal", {"effective_date": "2026-11-27"}, key=tenant.poster_key, idem=key
    )
    assert replay.status_code == 201
    assert replay.content == r.content
    twice = await tenant.post(f"/entries/{original['id']}/reversal", {}, key=tenant.poster_key)
    assert (twice.status_code, twice.json()["code"]) == (409, "entry_already_reversed")
    of_reversal = await tenant.post(f"/entries/{reversal['id']}/reversal", {}, key=tenant.poster_key)
    assert (of_reversal.status_code, of_reversal.json()["code"]) == (409, "entry_is_reversal")
    customer = (await tenant.get("/customers/C-1/account")).json()
    assert customer["state"] == "BALANCED"
    assert await entry_count(pool, tenant) == 2


async def test_reversal_defaults_to_the_originals_open_date_and_of_unknown_entry_is_404(tenant: Tenant) -> None:
    original = await tenant.sale("C-1", "119.00", "100.00", "19.00", date="2026-11-01")
    r = await tenant.post(f"/entries/{original['id']}/reversal", None, key=tenant.poster_key)
    assert r.status_code == 201, r.text
    assert r.json()["effective_date"] == "2026-11-01"  # November is open: the original's own date
    assert r.json()["description"].startswith(f"Reversal of entry {original['id']}")
    missing = await tenant.post("/entries/999999999/reversal", {}, key=tenant.poster_key)
    assert missing.status_code == 404


async def test_concurrent_reversals_book_one(pool: asyncpg.Pool, tenant: Tenant) -> None:
    original = await tenant.sale("C-1", "119.00", "100.00", "19.00")
    results = await asyncio.gather(
        *(tenant.post(f"/entries/{original['id']}/reversal", {}, key=tenant.poster_key) for _ in range(8))
    )
    assert sorted(r.status_code for r in results) == [201] + [409] * 7
    assert await entry_count(pool, tenant) == 2


def entry(amount: str, **extra: Any) -> dict[str, Any]:
    return {
        "effective_date": "2026-11-20",
        "description": "batch",
        "lines": [{"account": "1210", "debit": amount}, {"account": "8400", "credit": amount}],
        **extra,
    }


async def test_batch_posts_all_or_nothing(pool: asyncpg.Pool, tenant: Tenant) -> None:
    key = str(uuid.uuid4())
    r = await tenant.post(
        "/entries/batch", {"entries": [entry("1.00"), entry("2.00"), entry("3.00")]}, key=tenant.poster_key, idem=key
    )
    assert r.status_code == 201, r.text
    ids = [e["id"] for e in r.json()["entries"]]
    assert ids == sorted(ids)
    assert [e["lines"][0]["debit"] for e in r.json()["entries"]] == ["1.00", "2.00", "3.00"]
    replay = await tenant.post(
        "/entries/batch", {"entries": [entry("1.00"), entry("2.00"), entry("3.00")]}, key=tenant.poster_key, idem=key
    )
    assert replay.content == r.content
    bad = await tenant.post(
        "/entries/batch",
        {
            "entries": [
                entry("1.00"),
                entry("1.001"),
                entry("3.00"),
                {**entry("4.00"), "lines": entry("4.00")["lines"][:1]},
            ]
        },
        key=tenant.poster_key,
    )
    assert bad.status_code == 400  # the last entry has one line: the schema refuses the batch
    bad = await tenant.post(
        "/entries/batch", {"entries": [entry("1.00"), entry("1.001"), entry("3.00")]}, key=tenant.poster_key
    )
    assert (bad.status_code, bad.json()["code"]) == (422, "batch_invalid")
    assert [e["field"] for e in bad.json()["errors"]] == ["entries[1].lines[0].debit", "entries[1].lines[1].credit"]
    assert await entry_count(pool, tenant) == 3


async def test_batch_limits(tenant: Tenant) -> None:
    too_many = await tenant.post("/entries/batch", {"entries": [entry("1.00")] * 1001}, key=tenant.poster_key)
    assert too_many.status_code == 400
    empty = await tenant.post("/entries/batch", {"entries": []}, key=tenant.poster_key)
    assert empty.status_code == 400
    full = await tenant.post("/entries/batch", {"entries": [entry("1.00")] * 1000}, key=tenant.poster_key)
    assert full.status_code == 201, full.text[:300]
    assert len(full.json()["entries"]) == 1000


async def test_oversized_body_gets_413(tenant: Tenant) -> None:
    huge = {
        "effective_date": "2026-11-20",
        "description": "x",
        "lines": SALE,
        "metadata": {"k": "v" * 400},
        "padding": "x" * 2_000_000,
    }
    r = await tenant.post("/entries", huge, key=tenant.poster_key)
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_entries_of_unknown_business_or_id(tenant: Tenant, app_client: httpx.AsyncClient) -> None:
    assert (await tenant.get("/entries/123456789")).status_code == 404
    r = await app_client.get("/v1/businesses/4242/entries", headers=tenant.headers())
    assert (r.status_code, r.json()["code"]) == (404, "business_not_found")
    r = await app_client.get("/v1/businesses/12/entries", headers=tenant.headers())
    assert (r.status_code, r.json()["errors"][0]["field"]) == (400, "business_code")  # codes have four digits


async def test_an_account_another_instance_created_is_found_by_reading_the_accounts_again(
    tenant: Tenant, pool: asyncpg.Pool
) -> None:
    """The account cache is read again when a request names an account it lacks (ledger.tenancy.accounts_with):
    an account created through another instance of the service posts, reports and lists at once here."""
    assert (await tenant.post_entry(SALE)).status_code == 201  # this instance's cache holds the chart now
    await pool.execute(  # what another instance's POST .../accounts writes; this instance's cache does not know it
        "INSERT INTO accounts (merchant_id, business, number, name, type) VALUES ($1, $2, '8401', 'Other sales', "
        "'revenue')",
        tenant.merchant_id,
        tenant.business,
    )
    lines = [{"account": "1200", "debit": "10.00"}, {"account": "8401", "credit": "10.00"}]
    r = await tenant.post_entry(lines)
    assert r.status_code == 201, r.text
    assert [line["account"] for line in r.json()["lines"]] == ["1200", "8401"]
    balance = await tenant.get("/accounts/8401/balance")
    assert balance.status_code == 200, balance.text
    assert balance.json()["balances"][0]["balance"] == "10.00"

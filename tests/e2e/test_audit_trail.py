"""The audit trail: every entry names the key that posted it, and an accountant's actions (corrections,
reversals, exception resolutions, period closes) are recorded with who, when and why — append-only."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import msgspec
import pytest

from ledger import journal, periods, posting
from ledger.context import Kontor
from ledger.schemas import EntryIn
from ledger.tenancy import account_index, get_business
from tests.conftest import Tenant

LINES = [{"account": "1200", "debit": "5.00"}, {"account": "8400", "credit": "5.00"}]


async def _key_id(tenant: Tenant, key: str) -> int:
    return int(key.split("_")[2])


async def test_each_entry_names_the_key_that_posted_it(tenant: Tenant) -> None:
    by_poster = await tenant.post_entry(LINES, key=tenant.poster_key)
    by_accountant = await tenant.post_entry(
        LINES, key=tenant.accountant_key, description="Correction: typo", reason="typo in entry 1"
    )
    assert by_poster.status_code == by_accountant.status_code == 201, by_accountant.text
    assert by_poster.json()["posted_by"] == {
        "key_id": await _key_id(tenant, tenant.poster_key),
        "name": "poster",
        "role": "poster",
    }
    assert by_accountant.json()["posted_by"]["role"] == "accountant"
    # the same on every read path: one entry, the list, a replay
    one = await tenant.get(f"/entries/{by_accountant.json()['id']}")
    assert one.json() == by_accountant.json()
    listed = (await tenant.get("/entries")).json()["items"]
    assert [e["posted_by"]["name"] for e in listed] == ["poster", "accountant"]


async def test_a_replay_names_the_original_key_not_the_replaying_one(tenant: Tenant) -> None:
    key = str(uuid.uuid4())
    first = await tenant.post_entry(LINES, key=tenant.poster_key, idem=key)
    again = await tenant.post_entry(LINES, key=tenant.admin_key, idem=key)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["posted_by"] == first.json()["posted_by"]


async def test_an_accountant_reverses_with_a_reason_and_the_action_is_recorded(tenant: Tenant) -> None:
    original = (await tenant.post_entry(LINES, key=tenant.poster_key)).json()
    no_reason = await tenant.post(f"/entries/{original['id']}/reversal", {}, key=tenant.accountant_key)
    assert (no_reason.status_code, no_reason.json()["code"]) == (422, "reason_required")
    assert no_reason.json()["errors"][0]["field"] == "reason"
    assert (await tenant.get("/audit", key=tenant.accountant_key)).json()["items"] == []

    r = await tenant.post(f"/entries/{original['id']}/reversal", {"reason": "booked twice"}, key=tenant.accountant_key)
    assert r.status_code == 201, r.text
    assert r.json()["posted_by"]["role"] == "accountant"
    actions = (await tenant.get("/audit", key=tenant.accountant_key)).json()
    assert [(a["action"], a["subject"], a["reason"], a["by"]["name"]) for a in actions["items"]] == [
        ("entry.reversed", str(original["id"]), "booked twice", "accountant")
    ]
    assert actions["items"][0]["details"] == {"reversal": r.json()["id"]}
    # a poster (a payment service) may reverse without a reason; the action is recorded all the same
    other = (await tenant.post_entry(LINES, key=tenant.poster_key)).json()
    assert (await tenant.post(f"/entries/{other['id']}/reversal", {}, key=tenant.poster_key)).status_code == 201
    latest = (await tenant.get("/audit", action="entry.reversed")).json()["items"][0]
    assert (latest["subject"], latest["reason"], latest["by"]["role"]) == (str(other["id"]), None, "poster")


async def test_concurrent_reversals_with_one_key_book_and_record_once(pool: asyncpg.Pool, tenant: Tenant) -> None:
    original = (await tenant.post_entry(LINES, key=tenant.poster_key)).json()
    idem = str(uuid.uuid4())
    answers = await asyncio.gather(
        *(
            tenant.post(f"/entries/{original['id']}/reversal", {"reason": "dup"}, key=tenant.accountant_key, idem=idem)
            for _ in range(6)
        )
    )
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    count = await pool.fetchval(
        "SELECT count(*) FROM audit_actions WHERE merchant_id = $1 AND action = 'entry.reversed'", tenant.merchant_id
    )
    assert count == 1


async def test_an_accountants_correction_states_why_and_keeps_it_in_the_metadata(tenant: Tenant) -> None:
    """QA14 #8: an accountant's entry is a correction; without a reason it is 422 `reason_required` and nothing is
    booked. The reason (top-level `reason`, or `metadata.reason` as the web form sends it) is the entry's metadata
    `reason`; a poster's entry needs none."""
    refused = await tenant.post_entry(LINES, key=tenant.accountant_key, description="Korrektur")
    assert (refused.status_code, refused.json()["code"]) == (422, "reason_required"), refused.text
    assert refused.json()["errors"] == [{"field": "reason", "message": "required for accountant keys"}]
    assert (await tenant.get("/entries")).json()["items"] == []

    top = await tenant.post_entry(LINES, key=tenant.accountant_key, reason="Gebühr falsch gebucht",
                                  metadata={"ticket": "T-7"})  # fmt: skip
    assert top.status_code == 201, top.text
    assert top.json()["metadata"] == {"ticket": "T-7", "reason": "Gebühr falsch gebucht"}
    inside = await tenant.post_entry(LINES, key=tenant.accountant_key, metadata={"reason": "Skonto"})
    assert (inside.status_code, inside.json()["metadata"]) == (201, {"reason": "Skonto"}), inside.text
    same = await tenant.post_entry(LINES, key=tenant.accountant_key, reason="x", metadata={"reason": "x"})
    assert same.status_code == 201, same.text
    differ = await tenant.post_entry(LINES, key=tenant.accountant_key, reason="x", metadata={"reason": "y"})
    assert (differ.status_code, differ.json()["code"]) == (422, "reason_conflict"), differ.text
    full = await tenant.post_entry(LINES, key=tenant.accountant_key, reason="x",
                                   metadata={f"k{n}": "v" for n in range(50)})  # fmt: skip
    assert (full.status_code, full.json()["code"]) == (422, "entry_invalid"), full.text
    empty = await tenant.post_entry(LINES, key=tenant.accountant_key, reason="")
    assert empty.status_code == 400, empty.text
    assert (await tenant.post_entry(LINES, key=tenant.poster_key)).status_code == 201
    assert len((await tenant.get("/entries")).json()["items"]) == 4


async def test_an_accountants_period_close_states_why_and_names_the_key(tenant: Tenant) -> None:
    """QA14 #8: an accountant closes with a reason (422 `reason_required` otherwise, nothing closed); `closed_by`
    names the key as the web pages do: "<name> (key <id>, api): <reason>"."""
    key_id = await _key_id(tenant, tenant.accountant_key)
    for body in (None, {}):
        refused = await tenant.post("/periods/2026-09/close", body, key=tenant.accountant_key, idem=None)
        assert (refused.status_code, refused.json()["code"]) == (422, "reason_required"), refused.text
    assert (await tenant.get("/periods")).json() == []
    assert (await tenant.get("/audit", action="period.closed")).json()["items"] == []
    r = await tenant.post("/periods/2026-09/close", {"reason": "UStVA filed"}, key=tenant.accountant_key, idem=None)
    assert r.status_code == 200, r.text
    admin = await tenant.post("/periods/2026-10/close", None, idem=None)  # an admin may close without a reason
    assert admin.status_code == 200, admin.text
    admin_id = await _key_id(tenant, tenant.admin_key)
    closed = {p["period"]: p["closed_by"] for p in (await tenant.get("/periods")).json()}
    assert closed["2026-09"] == f"accountant (key {key_id}, api): UStVA filed"
    assert closed["2026-10"] == f"initial admin key (key {admin_id}, api)"


async def test_a_period_close_is_recorded_per_month_with_its_reason(tenant: Tenant) -> None:
    await tenant.post_entry(LINES, date="2026-09-10")
    r = await tenant.post("/periods/2026-10/close", {"reason": "VAT return filed"}, key=tenant.accountant_key)
    assert r.status_code == 200, r.text
    items = (await tenant.get("/audit", action="period.closed")).json()["items"]
    assert sorted((a["subject"], a["reason"]) for a in items) == [
        ("2026-09", "VAT return filed"),
        ("2026-10", "VAT return filed"),
    ]
    assert {a["by"]["role"] for a in items} == {"accountant"}
    bad = await tenant.post("/periods/2026-11/close", {"reason": ""}, key=tenant.accountant_key)
    assert bad.status_code == 400


async def test_the_audit_trail_pages_and_refuses_bad_parameters(tenant: Tenant) -> None:
    for _ in range(3):
        e = (await tenant.post_entry(LINES)).json()
        await tenant.post(f"/entries/{e['id']}/reversal", {"reason": "r"}, key=tenant.accountant_key)
    first = (await tenant.get("/audit", limit=2)).json()
    second = (await tenant.get("/audit", limit=2, cursor=first["next_cursor"])).json()
    ids = [a["action_id"] for a in first["items"] + second["items"]]
    assert len(ids) == 3
    assert ids == sorted(ids, reverse=True)
    assert second["next_cursor"] is None
    for params in ({"action": "entry.deleted"}, {"cursor": "%%%"}, {"limit": "0"}):
        r = await tenant.get("/audit", **params)
        assert r.status_code == 400, (params, r.text)


@pytest.mark.parametrize("statement", ["UPDATE audit_actions SET reason = 'x'", "DELETE FROM audit_actions"])
async def test_the_database_refuses_to_change_the_trail(pool: asyncpg.Pool, tenant: Tenant, statement: str) -> None:
    e = (await tenant.post_entry(LINES)).json()
    await tenant.post(f"/entries/{e['id']}/reversal", {"reason": "r"}, key=tenant.accountant_key)
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await pool.execute(statement)
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await pool.execute("UPDATE entries SET posted_by = NULL")


async def test_work_no_request_caused_names_no_key(ctx: Kontor, tenant: Tenant) -> None:
    """A scheduled job posts outside any request: its entries and actions name no key (`posted_by` null)."""
    await tenant.post_entry(LINES, date="2026-09-10")
    business = await get_business(ctx, tenant.merchant_id, tenant.business)
    await periods.close_period(ctx, business, "2026-09", "month-end-closing")  # as the scheduler does
    actions = (await tenant.get("/audit")).json()["items"]
    assert [(a["action"], a["by"]) for a in actions] == [("period.closed", None)]
    posted = await journal.post_entries(
        ctx,
        business,
        [
            posting.draft_entry(
                msgspec.convert({"effective_date": "2026-11-20", "description": "job", "lines": LINES}, EntryIn),
                business,
                (await account_index(ctx, business)).by_number,
            )
        ],
        idem_key=None,
        request_sha256=b"",
    )
    assert posted.entries[0].posted_by is None
    assert (await tenant.get(f"/entries/{posted.entries[0].id}")).json()["posted_by"] is None


async def test_a_reversal_carries_its_own_reason_not_the_originals(tenant: Tenant) -> None:
    """QA14 #10: the reversal of a correction keeps what the entry is about but says its own why: metadata `reason`
    is the reversal's reason (none without one), never the original's; `posted_via` is not copied either."""
    correction = await tenant.post_entry(LINES, key=tenant.accountant_key, reason="r",
                                         metadata={"ticket": "T-1", "posted_via": "web"})  # fmt: skip
    assert correction.status_code == 201, correction.text
    r = await tenant.post(f"/entries/{correction.json()['id']}/reversal", {"reason": "Fehlbuchung"},
                          key=tenant.accountant_key)  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["metadata"] == {"ticket": "T-1", "reason": "Fehlbuchung"}
    other = await tenant.post_entry(LINES, key=tenant.poster_key, metadata={"reason": "original"})
    plain = await tenant.post(f"/entries/{other.json()['id']}/reversal", {}, key=tenant.poster_key)
    assert (plain.status_code, plain.json()["metadata"]) == (201, {}), plain.text

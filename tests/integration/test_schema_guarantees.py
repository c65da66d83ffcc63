"""The database's own guarantees, exercised with hand-written SQL that bypasses the service.

Goal: prove that schema.sql alone refuses what must never happen (edits, deletes, unbalanced or
half-written entries, postings into closed periods, tables without the tenant key), so a bug or a
person with a SQL prompt cannot corrupt the books through ordinary statements.
"""

from __future__ import annotations

import hashlib
from datetime import date

import asyncpg
import pytest

from ledger.chain import link_pending
from ledger.db import apply_schema
from ledger.migrate import load_migrations
from tests.conftest import Tenant, make_tenant

# the migration that identifies bank statements by account + Id + date (among the other payments changes)
PAYMENTS_SINCE_CHECKOUT_V1 = next(m.sql for m in load_migrations() if m.name == "0002_payments_since_checkout_v1")
APPEND_ONLY = ["entries", "lines", "chain_links", "period_closes"]


async def _account_ids(pool: asyncpg.Pool, t: Tenant) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT number, account_id FROM accounts WHERE merchant_id = $1 AND business = $2", t.merchant_id, t.business
    )
    return {r["number"]: r["account_id"] for r in rows}


async def _insert_entry(conn: asyncpg.Connection, t: Tenant, day: str = "2026-11-20") -> int:
    entry_id: int = await conn.fetchval(
        "INSERT INTO entries (merchant_id, business, effective_date, description, content_sha256) "
        "VALUES ($1, $2, $3::text::date, 'by hand', $4) RETURNING entry_id",
        t.merchant_id,
        t.business,
        day,
        hashlib.sha256(b"x").digest(),
    )
    return entry_id


async def _insert_line(
    conn: asyncpg.Connection,
    t: Tenant,
    entry_id: int,
    no: int,
    account: int,
    side: str,
    amount: int,
    day: str = "2026-11-20",
    customer: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO lines (merchant_id, business, entry_id, line_no, account_id, customer, side, amount_minor, "
        "currency, effective_date) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'EUR', $9::text::date)",
        t.merchant_id,
        t.business,
        entry_id,
        no,
        account,
        customer,
        side,
        amount,
        day,
    )


@pytest.mark.parametrize("table", APPEND_ONLY)
async def test_update_delete_truncate_are_refused(pool: asyncpg.Pool, tenant: Tenant, table: str) -> None:
    await tenant.sale("C-1", "119.00", "100.00", "19.00")
    await _ensure_row(pool, tenant, table)
    async with pool.acquire() as conn:
        for sql in (
            f"UPDATE {table} SET merchant_id = merchant_id WHERE merchant_id = $1",
            f"DELETE FROM {table} WHERE merchant_id = $1",
        ):
            with pytest.raises(asyncpg.PostgresError, match="append-only") as exc:
                await conn.execute(sql, tenant.merchant_id)
            assert exc.value.sqlstate == "KN100"
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await conn.execute(f"TRUNCATE {table} CASCADE")


async def _ensure_row(pool: asyncpg.Pool, t: Tenant, table: str) -> None:
    """Row triggers fire per row: make sure the table holds a row of this merchant."""
    if table == "chain_links":
        while await link_pending(pool):
            pass
    if table == "period_closes":
        await pool.execute("SELECT kontor_close_period($1, $2, '2020-01-01', 'test')", t.merchant_id, t.business)
    count = await pool.fetchval(f"SELECT count(*) FROM {table} WHERE merchant_id = $1", t.merchant_id)
    assert count > 0


async def test_unbalanced_entry_fails_at_commit_and_leaves_nothing(pool: asyncpg.Pool, tenant: Tenant) -> None:
    ids = await _account_ids(pool, tenant)
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        entry_id = await _insert_entry(conn, tenant)
        await _insert_line(conn, tenant, entry_id, 1, ids["1200"], "D", 11900)
        await _insert_line(conn, tenant, entry_id, 2, ids["8400"], "C", 10000)  # 19.00 short
        with pytest.raises(asyncpg.CheckViolationError, match=f"entry {entry_id} does not balance in EUR"):
            await tx.commit()
    assert await pool.fetchval("SELECT count(*) FROM entries WHERE entry_id = $1", entry_id) == 0
    assert await pool.fetchval("SELECT count(*) FROM lines WHERE entry_id = $1", entry_id) == 0


async def test_balance_is_checked_at_commit_not_per_statement(pool: asyncpg.Pool, tenant: Tenant) -> None:
    ids = await _account_ids(pool, tenant)
    async with pool.acquire() as conn, conn.transaction():
        entry_id = await _insert_entry(conn, tenant)
        await _insert_line(conn, tenant, entry_id, 1, ids["1200"], "D", 500)
        # unbalanced here, balanced by the next statement: the deferred trigger sees the final state
        await _insert_line(conn, tenant, entry_id, 2, ids["8400"], "C", 500)
    assert await pool.fetchval("SELECT count(*) FROM lines WHERE entry_id = $1", entry_id) == 2


async def test_entry_without_lines_fails_at_commit(pool: asyncpg.Pool, tenant: Tenant) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError, match="has no lines"):
            async with conn.transaction():
                await _insert_entry(conn, tenant)


async def test_lines_cannot_be_added_to_an_existing_entry(pool: asyncpg.Pool, tenant: Tenant) -> None:
    entry = await tenant.sale("C-1", "119.00", "100.00", "19.00")
    ids = await _account_ids(pool, tenant)
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.PostgresError, match="must be inserted with the entry"):
            async with conn.transaction():
                await _insert_line(conn, tenant, entry["id"], 4, ids["1200"], "D", 1)
                await _insert_line(conn, tenant, entry["id"], 5, ids["8400"], "C", 1)


async def test_lines_must_carry_the_entry_date(pool: asyncpg.Pool, tenant: Tenant) -> None:
    ids = await _account_ids(pool, tenant)
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.PostgresError, match="carry its date"):
            async with conn.transaction():
                entry_id = await _insert_entry(conn, tenant, "2026-11-20")
                await _insert_line(conn, tenant, entry_id, 1, ids["1200"], "D", 1, day="2026-11-21")
                await _insert_line(conn, tenant, entry_id, 2, ids["8400"], "C", 1, day="2026-11-21")


@pytest.mark.parametrize("amount", [0, -100, 10**15 + 1])
async def test_amounts_are_positive_bounded_integers(pool: asyncpg.Pool, tenant: Tenant, amount: int) -> None:
    ids = await _account_ids(pool, tenant)
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError, match="amount_minor"):
            async with conn.transaction():
                entry_id = await _insert_entry(conn, tenant)
                await _insert_line(conn, tenant, entry_id, 1, ids["1200"], "D", amount)


async def test_lines_reference_accounts_of_the_same_business(pool: asyncpg.Pool, tenant: Tenant) -> None:
    other = await make_tenant(tenant.client)
    foreign = (await _account_ids(pool, other))["1200"]
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            async with conn.transaction():
                entry_id = await _insert_entry(conn, tenant)
                await _insert_line(conn, tenant, entry_id, 1, foreign, "D", 1)


async def test_closed_period_refuses_postings_by_hand(pool: asyncpg.Pool, tenant: Tenant) -> None:
    ids = await _account_ids(pool, tenant)
    await pool.execute("SELECT kontor_close_period($1, $2, '2026-10-01', 'test')", tenant.merchant_id, tenant.business)
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.PostgresError, match="period 2026-10 is closed") as exc:
            async with conn.transaction():
                entry_id = await _insert_entry(conn, tenant, "2026-10-31")
                await _insert_line(conn, tenant, entry_id, 1, ids["1200"], "D", 1, day="2026-10-31")
                await _insert_line(conn, tenant, entry_id, 2, ids["8400"], "C", 1, day="2026-10-31")
        assert exc.value.sqlstate == "KN001"
        # the day after the closed month is open
        async with conn.transaction():
            entry_id = await _insert_entry(conn, tenant, "2026-11-01")
            await _insert_line(conn, tenant, entry_id, 1, ids["1200"], "D", 1, day="2026-11-01")
            await _insert_line(conn, tenant, entry_id, 2, ids["8400"], "C", 1, day="2026-11-01")


async def test_closed_periods_cannot_be_reopened(pool: asyncpg.Pool, tenant: Tenant) -> None:
    await pool.execute("SELECT kontor_close_period($1, $2, '2026-10-01', 'test')", tenant.merchant_id, tenant.business)
    for value in ("NULL", "'2026-09-30'"):
        with pytest.raises(asyncpg.PostgresError, match="cannot be reopened"):
            await pool.execute(
                f"UPDATE businesses SET closed_through = {value} WHERE merchant_id = $1", tenant.merchant_id
            )
    # closing an earlier month again changes nothing
    through = await pool.fetchval(
        "SELECT kontor_close_period($1, $2, '2026-08-01', 'test')", tenant.merchant_id, tenant.business
    )
    assert str(through) == "2026-10-31"


async def test_accounts_and_businesses_keep_their_keys(pool: asyncpg.Pool, tenant: Tenant) -> None:
    m = tenant.merchant_id
    for sql in (
        "DELETE FROM accounts WHERE merchant_id = $1",
        "UPDATE accounts SET type = 'expense' WHERE merchant_id = $1",
        "UPDATE accounts SET customer_ledger = NOT customer_ledger WHERE merchant_id = $1",
        "DELETE FROM businesses WHERE merchant_id = $1",
        "UPDATE businesses SET currency = 'USD' WHERE merchant_id = $1",
    ):
        with pytest.raises(asyncpg.PostgresError) as exc:
            await pool.execute(sql, m)
        assert exc.value.sqlstate == "KN100", sql
    await pool.execute(
        "UPDATE accounts SET name = 'Renamed', alt_number = 'X1' WHERE merchant_id = $1 AND number = '1200'", m
    )


async def test_every_table_is_keyed_by_merchant(pool: asyncpg.Pool) -> None:
    """Citus-ready: merchant_id in every table, primary key, unique constraint and foreign key."""
    reference_tables = {
        "merchants",
        "schema_migrations",
        "chain_watermark",
        "base_rates",
        "amazon_pay_accounts",
    }  # operator tables
    tables = {
        r["relname"]
        for r in await pool.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r'"
        )
    }
    assert {"entries", "lines", "accounts", "businesses", "balance_totals", "idempotency_keys"} <= tables
    constraints = await pool.fetch(
        "SELECT c.conrelid::regclass::text AS tbl, c.conname, c.contype, "
        "ARRAY(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)) AS cols "
        "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
        "WHERE n.nspname = 'public' AND c.contype IN ('p', 'u', 'f')"
    )
    unique_indexes = await pool.fetch(
        "SELECT i.indrelid::regclass::text AS tbl, i.indexrelid::regclass::text AS name, "
        "ARRAY(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)) AS cols "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND i.indisunique"
    )
    for table in tables - reference_tables:
        columns = {
            r["attname"]
            for r in await pool.fetch(
                "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0", table
            )
        }
        assert "merchant_id" in columns, table
    for c in constraints:
        if c["tbl"] in reference_tables:
            continue
        assert "merchant_id" in c["cols"], f"{c['tbl']}.{c['conname']} lacks merchant_id"
    for i in unique_indexes:
        if i["tbl"] not in reference_tables:
            assert "merchant_id" in i["cols"], f"unique index {i['name']} lacks merchant_id"


async def test_schema_application_at_a_second_start_changes_nothing(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await apply_schema(conn) is False  # installed at session start: nothing to do
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations WHERE how = 'installed'") == len(
            load_migrations()
        )


async def test_bank_statement_identity_is_added_to_an_existing_database(pool: asyncpg.Pool, tenant: Tenant) -> None:
    """A database from before statements were identified by account + Id + date: the migration that adds it keeps
    its rows (account '', their import day) and makes the new identity the primary key. Rolled back afterwards."""
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute(
                "DELETE FROM bank_statements; ALTER TABLE bank_statements DROP CONSTRAINT bank_statements_pkey; "
                "ALTER TABLE bank_statements DROP COLUMN account, DROP COLUMN statement_on; "
                "ALTER TABLE bank_statements ADD PRIMARY KEY (merchant_id, business, statement_id)"
            )
            await conn.execute(
                "INSERT INTO bank_statements (merchant_id, business, statement_id, file_sha256, summary, imported_at) "
                "VALUES ($1, $2, '8', '\\x00', '{}', '2024-01-31 12:00+00')",
                tenant.merchant_id,
                tenant.business,
            )
            await conn.execute(PAYMENTS_SINCE_CHECKOUT_V1)
            await conn.execute(PAYMENTS_SINCE_CHECKOUT_V1)  # and again: a database half-way there is taken too
            row = await conn.fetchrow("SELECT account, statement_id, statement_on FROM bank_statements")
            assert tuple(row) == ("", "8", date(2024, 1, 31))
            key = await conn.fetchval(
                "SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey, a.attnum)) FROM pg_index i "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
                "WHERE i.indrelid = 'bank_statements'::regclass AND i.indisprimary"
            )
            assert key == ["merchant_id", "business", "account", "statement_id", "statement_on"]
        finally:
            await tx.rollback()

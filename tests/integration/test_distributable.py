"""The schema stays distributable by merchant (Citus): a catalogue check of every table (docs/scaling-citus.md).

Rule: a table is either distributed by `merchant_id` or on REFERENCE_TABLES below. A distributed table has a
primary key, and `merchant_id bigint NOT NULL` is the first column of that key and of every other unique
constraint and unique index (partial ones too); its foreign keys to other distributed tables pair merchant_id
with merchant_id. A reference table (copied to every node) has no foreign key to a distributed table. What
breaks the rule today is listed in NOT_DISTRIBUTABLE with the reason, and must keep breaking it: a table that
becomes distributable is taken off that list, so the list never hides a new table.

The second test creates tables that break the rule (in a transaction it rolls back) and checks that each is named.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg

if TYPE_CHECKING:
    from ledger.db import Connection

# copied to every node: small, read by all merchants, written rarely (by the operator or at schema time)
REFERENCE_TABLES = {
    "schema_migrations": "the migrations applied (one row per migration, ledger/migrate.py); written only at start, "
    "under the schema lock, by the instance that installs or migrates",
    "base_rates": "the Bundesbank base rate (§247 BGB), one row per half-year, shared by every merchant",
    "amazon_pay_accounts": "which business code an Amazon merchant id belongs to: an IPN names only Amazon's id",
}
# break the rule today; docs/scaling-citus.md says what each becomes on a cluster
NOT_DISTRIBUTABLE = {
    "chain_watermark": "one transaction-id watermark for every merchant; transaction ids are per node on a cluster",
}


async def violations(conn: Connection, schema: str) -> dict[str, list[str]]:
    """Per table of `schema`, what breaks the rule (tables that keep it are left out)."""
    tables = await conn.fetch(
        "SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY c.relname",
        schema,
    )
    reference = set(REFERENCE_TABLES)
    found: dict[str, list[str]] = {}
    for table in tables:
        name, problems = table["relname"], []
        if name in reference:
            refs = await conn.fetch(
                "SELECT con.conname, t.relname AS target FROM pg_constraint con JOIN pg_class t ON t.oid = con.confrelid "
                "WHERE con.conrelid = $1 AND con.contype = 'f'",
                table["oid"],
            )
            problems += [
                f"foreign key {r['conname']} of a reference table points at {r['target']}, not a reference table"
                for r in refs
                if r["target"] not in reference
            ]
        else:
            problems += await _distributed_problems(conn, table["oid"], reference)
        if problems:
            found[name] = problems
    return found


async def _distributed_problems(conn: Connection, oid: int, reference: set[str]) -> list[str]:
    problems = []
    column = await conn.fetchrow(
        "SELECT format_type(atttypid, atttypmod) AS type, attnotnull FROM pg_attribute "
        "WHERE attrelid = $1 AND attname = 'merchant_id' AND NOT attisdropped",
        oid,
    )
    if column is None:
        return ["no merchant_id column to distribute it by"]
    if (column["type"], column["attnotnull"]) != ("bigint", True):
        problems.append(
            f"merchant_id is {column['type']}{'' if column['attnotnull'] else ' (nullable)'}, not bigint NOT NULL"
        )
    indexes = await conn.fetch(
        "SELECT i.indexrelid::regclass::text AS name, i.indisprimary AS primary_key, "
        "(SELECT attname FROM pg_attribute WHERE attrelid = i.indrelid AND attnum = i.indkey[0]) AS first "
        "FROM pg_index i WHERE i.indrelid = $1 AND i.indisunique",
        oid,
    )
    if not any(i["primary_key"] for i in indexes):
        problems.append("no primary key")
    problems += [
        f"{'primary key' if i['primary_key'] else 'unique index'} {i['name']} does not start with merchant_id"
        for i in indexes
        if i["first"] != "merchant_id"
    ]
    foreign = await conn.fetch(
        "SELECT con.conname, t.relname AS target, "
        "ARRAY(SELECT attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a "
        "      ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o) AS columns, "
        "ARRAY(SELECT attname FROM unnest(con.confkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a "
        "      ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o) AS target_columns "
        "FROM pg_constraint con JOIN pg_class t ON t.oid = con.confrelid WHERE con.conrelid = $1 AND con.contype = 'f'",
        oid,
    )
    for fk in foreign:
        if fk["target"] in reference:
            continue  # distributed -> reference: allowed
        pairs = list(zip(fk["columns"], fk["target_columns"], strict=True))
        if ("merchant_id", "merchant_id") not in pairs:
            problems.append(f"foreign key {fk['conname']} to {fk['target']} does not pair merchant_id with merchant_id")
    return problems


async def test_every_table_is_distributed_by_merchant_or_a_reference_table(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        schema = await conn.fetchval("SELECT current_schema()")
        found = await violations(conn, schema)
        names = set(await conn.fetchval(
            "SELECT array_agg(relname::text) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')", schema
        ))  # fmt: skip
    unexplained = {t: p for t, p in found.items() if t not in NOT_DISTRIBUTABLE}
    assert unexplained == {}, (
        "distribute these tables by merchant_id (docs/scaling-citus.md), or make them reference tables"
    )
    assert set(NOT_DISTRIBUTABLE) <= set(found), "distributable now: take it off NOT_DISTRIBUTABLE"
    assert set(REFERENCE_TABLES) <= names, "a reference table that no longer exists: take it off the list"


async def test_a_table_that_breaks_the_rule_is_named(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        schema = await conn.fetchval("SELECT current_schema()")
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute(
                """
                CREATE TABLE kontor_probe_no_merchant (id bigint PRIMARY KEY);
                CREATE TABLE kontor_probe_key_order (
                    merchant_id bigint NOT NULL, id bigint NOT NULL, code text NOT NULL,
                    PRIMARY KEY (id, merchant_id), UNIQUE (code));
                CREATE TABLE kontor_probe_good (
                    merchant_id bigint NOT NULL, business smallint NOT NULL, ref text NOT NULL,
                    PRIMARY KEY (merchant_id, business, ref),
                    FOREIGN KEY (merchant_id, business) REFERENCES businesses (merchant_id, business));
                CREATE TABLE kontor_probe_foreign (
                    merchant_id bigint NOT NULL, item bigint NOT NULL, business smallint NOT NULL, ref text NOT NULL,
                    PRIMARY KEY (merchant_id, item),
                    FOREIGN KEY (business, ref, merchant_id) REFERENCES kontor_probe_good (business, ref, merchant_id)
                        MATCH SIMPLE,
                    FOREIGN KEY (item) REFERENCES kontor_probe_no_merchant (id));
                CREATE UNIQUE INDEX kontor_probe_expression ON kontor_probe_good (lower(ref));
                CREATE UNIQUE INDEX kontor_probe_shifted ON kontor_probe_good (business, merchant_id, ref);
                CREATE TABLE kontor_probe_nullable (merchant_id integer, id bigint, PRIMARY KEY (id));
                """
            )
            found = await violations(conn, schema)
        finally:
            await tx.rollback()
    assert sorted(found["kontor_probe_good"]) == [  # its key is fine; its other unique indexes are not
        "unique index kontor_probe_expression does not start with merchant_id",
        "unique index kontor_probe_shifted does not start with merchant_id",
    ]
    assert found["kontor_probe_no_merchant"] == ["no merchant_id column to distribute it by"]
    assert sorted(found["kontor_probe_key_order"]) == [
        "primary key kontor_probe_key_order_pkey does not start with merchant_id",
        "unique index kontor_probe_key_order_code_key does not start with merchant_id",
    ]
    assert found["kontor_probe_foreign"] == [
        "foreign key kontor_probe_foreign_item_fkey to kontor_probe_no_merchant does not pair merchant_id with merchant_id"
    ], "a key that pairs merchant_id with merchant_id in another position is fine; one without it is not"
    assert sorted(found["kontor_probe_nullable"]) == [
        "merchant_id is integer (nullable), not bigint NOT NULL",
        "primary key kontor_probe_nullable_pkey does not start with merchant_id",
    ]

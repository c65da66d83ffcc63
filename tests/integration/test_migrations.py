"""Versioned migrations (ledger/migrate.py): a database of the oldest released schema is migrated to the catalogue
of a fresh install from schema.sql, its data moved; an empty database gets schema.sql with every migration
recorded; instances starting together apply each migration once; a database ahead of this Kontor, an edited
migration and a failing migration are refused without a half-applied change.

Released schemas are kept in tests/data/schemas/ (oldest first): each is a dump of the schema as released."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from click.testing import CliRunner, Result

from ledger import cli
from ledger.migrate import Migration, SchemaError, load_migrations, migrate

SCHEMAS = Path(__file__).parent.parent / "data" / "schemas"
CHECKOUT_V1 = SCHEMAS / "2026-11-27-checkout-v1.sql"  # the oldest released schema
RELEASED = sorted(SCHEMAS.glob("*.sql"))  # oldest first (named by date)

# the catalogue of schema `public`: every table, column (type, nullability, default, identity), constraint,
# index, sequence, function (whole definition) and trigger
CATALOGUE = {
    "tables": "SELECT relname, relkind::text, relpersistence::text FROM pg_class "
    "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'v', 'm', 'S')",
    "columns": "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
    "pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text "
    "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
    "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND a.attnum > 0 "
    "AND NOT a.attisdropped",
    "constraints": "SELECT conrelid::regclass::text, conname, contype::text, condeferrable, condeferred, "
    "pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "sequences": "SELECT sequencename, data_type::text, start_value, increment_by, max_value, cycle "
    "FROM pg_sequences WHERE schemaname = 'public'",
    "functions": "SELECT proname, pg_get_function_identity_arguments(oid), pg_get_functiondef(oid) FROM pg_proc "
    "WHERE pronamespace = 'public'::regnamespace",
    "triggers": "SELECT tgrelid::regclass::text, tgname, tgenabled::text, pg_get_triggerdef(oid) FROM pg_trigger "
    "WHERE NOT tgisinternal",
}


async def catalogue(conn: asyncpg.Connection) -> dict[str, set[tuple[object, ...]]]:
    return {name: {tuple(r) for r in await conn.fetch(query)} for name, query in CATALOGUE.items()}


def assert_same_catalogue(
    upgraded: dict[str, set[tuple[object, ...]]], installed: dict[str, set[tuple[object, ...]]]
) -> None:
    for name in CATALOGUE:
        assert upgraded[name] - installed[name] == set(), f"{name}: only in the migrated database"
        assert installed[name] - upgraded[name] == set(), f"{name}: only in a fresh install"


class Scratch:
    """Empty databases on the test server and connections to them, all closed and dropped afterwards."""

    def __init__(self, server_url: str, admin: asyncpg.Connection) -> None:
        self.server_url, self.admin = server_url, admin
        self.names: list[str] = []
        self.conns: list[asyncpg.Connection] = []

    async def database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"kontor_migr_{secrets.token_hex(4)}"
        await self.admin.execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return urlunsplit(urlsplit(self.server_url)._replace(path=f"/{name}"))

    async def connect(self, url: str) -> asyncpg.Connection:
        self.conns.append(await asyncpg.connect(url))
        return self.conns[-1]


@pytest.fixture
async def scratch(database_url: str) -> AsyncIterator[Scratch]:
    admin = await asyncpg.connect(database_url)
    made = Scratch(database_url, admin)
    try:
        yield made
    finally:
        for conn in made.conns:
            await conn.close()
        for name in made.names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _v1_books(conn: asyncpg.Connection) -> None:
    """What Checkout v1 left behind: settings with an MWS token, an order with an open authorization, a
    captured one with a pending refund and a chargeback under dispute with evidence, and an IPN."""
    await conn.execute(
        """
        INSERT INTO merchants (name) OVERRIDING SYSTEM VALUE VALUES ('v1 GmbH');
        INSERT INTO businesses (merchant_id, business, country, currency, chart, vat_rates)
            VALUES (1, 1001, 'DE', 'EUR', 'skr03', '{19,7}');
        INSERT INTO amazon_pay_settings (merchant_id, business, seller_id, mws_auth_token, region, sandbox,
            payment_execution) VALUES (1, 1001, 'A1SELLERV1', 'amzn.mws.0000', 'uk', true, 'two_step');
        INSERT INTO orders (merchant_id, business, order_ref, customer, order_date, amazon_order_reference_id,
            payment_execution, status, gross_minor, bill_to, request_sha256, amazon_state)
            VALUES (1, 1001, 'O-1', 'C-1', '2026-03-01', 'S02-1111111-1111111', 'two_step', 'authorized', 20000,
                    '{}', '\\x00', 'Open');
        INSERT INTO amazon_authorizations (merchant_id, business, order_ref, authorization_id, reference_id,
            amount_minor, state, expires_at, capture_now) VALUES
            (1, 1001, 'O-1', 'S02-1111111-1111111-A000001', 'O-1-a1', 20000, 'Closed', NULL, false),
            (1, 1001, 'O-1', 'S02-1111111-1111111-A000002', 'O-1-a2', 8000, 'Open', '2026-04-01', false);
        INSERT INTO amazon_captures (merchant_id, business, order_ref, capture_id, authorization_id, reference_id,
            amount_minor, state, entry_id, refunds_minor, refund_count, chargebacks_minor) VALUES
            (1, 1001, 'O-1', 'S02-1111111-1111111-C000001', 'S02-1111111-1111111-A000001', 'O-1-c1', 12000,
             'Completed', 41, 1000, 1, 2000);
        INSERT INTO amazon_refunds (merchant_id, business, order_ref, reference_id, refund_id, capture_id,
            amount_minor, state, source_kind, source_ref) VALUES
            (1, 1001, 'O-1', 'O-1-r1', 'S02-1111111-1111111-R000001', 'S02-1111111-1111111-C000001', 1000,
             'Pending', 'return', 'RET-1');
        INSERT INTO chargebacks (merchant_id, business, chargeback_id, order_ref, capture_id, kind, amount_minor,
            received_on, entry_id) VALUES (1, 1001, 'C9KORZRXQ655G', 'O-1', 'S02-1111111-1111111-C000001',
            'chargeback', 2000, '2026-03-10', 42);
        INSERT INTO disputes (merchant_id, business, chargeback_id, order_ref, customer, amount_minor, opened_on,
            deadline, state) VALUES (1, 1001, 'C9KORZRXQ655G', 'O-1', 'C-1', 2000, '2026-03-10', '2026-03-21', 'open');
        INSERT INTO dispute_evidence (merchant_id, dispute_id, kind, content)
            VALUES (1, 1, 'tracking_number', 'DHL 0034');
        INSERT INTO ipn_messages (merchant_id, notification_id, seller_id, notification_type, raw, processed_at,
            outcome) VALUES (1, 'n-1', 'A1SELLERV1', 'PaymentCapture', '{}', now(), 'capture Completed'),
                            (1, 'n-2', 'A1SELLERV1', 'PaymentRefund', '{}', NULL, NULL);
        """
    )


async def test_oldest_release_is_migrated_to_the_catalogue_of_a_fresh_install(scratch: Scratch) -> None:
    old = await scratch.connect(await scratch.database())
    await old.execute(CHECKOUT_V1.read_text())
    await _v1_books(old)
    known = load_migrations()
    result = await migrate(old)
    assert (result.how, result.applied) == ("migrated", tuple(m.version for m in known))
    assert (await migrate(old)).how == "current"  # each once

    settings = await old.fetchrow("SELECT * FROM amazon_pay_settings")
    assert settings["access"] == "v1"
    assert settings["amazon_merchant_id"] == "A1SELLERV1"
    assert settings["legacy_mws_auth_token"] == "amzn.mws.0000"
    assert settings["region"] == "eu"
    assert tuple(await old.fetchrow("SELECT * FROM amazon_pay_accounts"))[:3] == ("A1SELLERV1", 1, 1001)
    order = await old.fetchrow("SELECT * FROM orders")
    assert order["charge_permission_id"] == "S02-1111111-1111111"
    assert order["checkout_session_id"] is None
    assert order["charge_permission_state"] == "Open"
    charges = {r["charge_id"]: r for r in await old.fetch("SELECT * FROM amazon_charges")}
    assert set(charges) == {"S02-1111111-1111111-C000001", "S02-1111111-1111111-A000002"}
    captured = charges["S02-1111111-1111111-C000001"]
    assert (captured["state"], captured["captured_minor"], captured["entry_id"]) == ("Captured", 12000, 41)
    assert (captured["refunds_minor"], captured["refund_count"], captured["chargebacks_minor"]) == (1000, 1, 2000)
    assert captured["charge_permission_id"] == "S02-1111111-1111111"
    authorized = charges["S02-1111111-1111111-A000002"]
    assert (authorized["state"], authorized["amount_minor"], authorized["captured_minor"]) == ("Authorized", 8000, 0)
    assert authorized["expires_at"] is not None
    refund = await old.fetchrow("SELECT * FROM amazon_refunds")
    assert (refund["state"], refund["charge_id"]) == ("RefundInitiated", "S02-1111111-1111111-C000001")
    assert await old.fetchval("SELECT charge_id FROM chargebacks") == "S02-1111111-1111111-C000001"
    assert await old.fetchval("SELECT kind FROM dispute_evidence") == "TrackingNumber"
    assert [tuple(r) for r in await old.fetch("SELECT notification_id, state FROM ipn_messages ORDER BY 1")] == [
        ("n-1", "processed"),
        ("n-2", "pending"),
    ]
    assert await old.fetchval("SELECT to_regclass('amazon_captures')") is None
    assert await old.fetchval("SELECT to_regclass('kontor_schema')") is None
    recorded = [
        tuple(r) for r in await old.fetch("SELECT version, name, sha256, how FROM schema_migrations ORDER BY 1")
    ]
    assert recorded == [(m.version, m.name, m.sha256, "migrated") for m in known]

    fresh = await scratch.connect(await scratch.database())
    assert (await migrate(fresh)).how == "installed"
    assert_same_catalogue(await catalogue(old), await catalogue(fresh))


@pytest.mark.parametrize("release", RELEASED, ids=[p.stem for p in RELEASED])
async def test_every_released_schema_is_migrated_to_the_catalogue_of_a_fresh_install(
    scratch: Scratch, release: Path
) -> None:
    """Each released schema, applied as it was released (twice: those schemas re-applied themselves at every
    start), then migrated: the catalogue of a fresh install."""
    old = await scratch.connect(await scratch.database())
    sql = await asyncio.to_thread(release.read_text)
    await old.execute(sql)
    await old.execute(sql)
    assert (await migrate(old)).how == "migrated"
    fresh = await scratch.connect(await scratch.database())
    await migrate(fresh)
    assert_same_catalogue(await catalogue(old), await catalogue(fresh))


async def test_empty_database_gets_schema_sql_and_every_migration_recorded_as_installed(scratch: Scratch) -> None:
    conn = await scratch.connect(await scratch.database())
    assert (await migrate(conn)).how == "installed"
    recorded = [
        tuple(r) for r in await conn.fetch("SELECT version, name, sha256, how FROM schema_migrations ORDER BY 1")
    ]
    assert recorded == [(m.version, m.name, m.sha256, "installed") for m in load_migrations()]
    assert (await migrate(conn)).how == "current"
    # the seed rows are there once
    assert await conn.fetchval("SELECT count(*) FROM chain_watermark") == 1
    assert await conn.fetchval("SELECT count(*) FROM base_rates") > 0


PROBE = "CREATE TABLE IF NOT EXISTS migration_probe (run int GENERATED ALWAYS AS IDENTITY); INSERT INTO migration_probe DEFAULT VALUES;"


@pytest.mark.parametrize("start", ["empty", "oldest release"])
async def test_instances_starting_together_apply_each_migration_once(scratch: Scratch, start: str) -> None:
    """Four instances start at once on one database: one installs or migrates, the others wait on the advisory
    lock and find nothing to do; the probe migration (a row per run) ran once."""
    url = await scratch.database()
    if start == "oldest release":
        await (await scratch.connect(url)).execute(CHECKOUT_V1.read_text())
    known = load_migrations()
    with_probe = [*known, Migration(len(known) + 1, "ledger", f"{len(known) + 1:04d}_ledger_probe", PROBE)]
    conns = [await scratch.connect(url) for _ in range(4)]
    if start == "empty":
        await migrate(conns[0], known)  # the probe then runs as a migration of an existing database
    results = await asyncio.gather(*(migrate(conn, with_probe) for conn in conns))
    assert sorted(r.how for r in results) == ["current", "current", "current", "migrated"]
    assert await conns[0].fetchval("SELECT count(*) FROM migration_probe") == 1
    versions = [r["version"] for r in await conns[0].fetch("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [m.version for m in with_probe]


async def test_concurrent_installs_into_an_empty_database_install_once(scratch: Scratch) -> None:
    url = await scratch.database()
    conns = [await scratch.connect(url) for _ in range(3)]
    results = await asyncio.gather(*(migrate(conn) for conn in conns))
    assert sorted(r.how for r in results) == ["current", "current", "installed"]


async def test_a_failing_migration_rolls_back_alone_and_runs_again_at_the_next_start(scratch: Scratch) -> None:
    conn = await scratch.connect(await scratch.database())
    known = load_migrations()
    await migrate(conn, known)
    nxt = len(known) + 1
    failing = Migration(
        nxt, "ledger", f"{nxt:04d}_ledger_probe", "CREATE TABLE migration_probe (run int); SELECT 1 / 0;"
    )
    with pytest.raises(asyncpg.DivisionByZeroError):
        await migrate(conn, [*known, failing])
    assert await conn.fetchval("SELECT to_regclass('migration_probe')") is None
    assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == len(known)
    fixed = replace(failing, sql=PROBE)
    assert (await migrate(conn, [*known, fixed])).applied == (nxt,)


async def test_a_database_ahead_of_this_kontor_or_an_edited_migration_is_refused(scratch: Scratch) -> None:
    conn = await scratch.connect(await scratch.database())
    known = load_migrations()
    await migrate(conn, known)
    with pytest.raises(SchemaError, match="newer than this Kontor"):
        await migrate(conn, known[:-1])
    edited = [replace(known[0], sql=known[0].sql + "\n-- edited\n"), *known[1:]]
    with pytest.raises(SchemaError, match="other contents"):
        await migrate(conn, edited)
    # nothing was held: the lock is free again
    assert await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0


def test_migration_files_are_numbered_and_owned(tmp_path: Path) -> None:
    assert [m.owner for m in load_migrations()][:3] == ["ledger", "payments", "dunning"]
    (tmp_path / "0001_ledger_a.sql").write_text("SELECT 1;")
    (tmp_path / "0003_ledger_b.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match="without gaps"):
        load_migrations(tmp_path)
    (tmp_path / "0002_billing_c.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match="NNNN_"):
        load_migrations(tmp_path)


async def test_kontor_schema_status_and_migrate(scratch: Scratch) -> None:
    """`kontor schema status` lists what is pending and changes nothing; `kontor schema migrate` applies it."""
    url = await scratch.database()
    await (await scratch.connect(url)).execute(CHECKOUT_V1.read_text())
    runner = CliRunner(env={"KONTOR_DATABASE_URL": url})

    async def kontor(*args: str) -> Result:
        return await asyncio.to_thread(runner.invoke, cli.main, ["schema", *args])

    status = await kontor("status")
    assert status.exit_code == 1, status.output
    assert "from before versioned migrations" in status.output
    assert status.output.count("pending") == len(load_migrations()) + 1
    again = await kontor("status")
    assert again.output == status.output  # status changed nothing
    done = await kontor("migrate")
    assert done.exit_code == 0, done.output
    assert done.output.strip() == "migrated: applied " + ", ".join(f"{m.version:04d}" for m in load_migrations())
    status = await kontor("status")
    assert status.exit_code == 0, status.output
    assert "pending" not in status.output
    assert status.output.count(" migrated ") == len(load_migrations())
    assert (await kontor("migrate")).output.strip() == "the schema is current"

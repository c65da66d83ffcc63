"""A database that ran an earlier release is taken forward by schema.sql: its data moved, its catalogue then
identical to a fresh install's. Released schemas are kept in tests/data/schemas/ (oldest first)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from ledger.db import apply_schema

SCHEMAS = Path(__file__).parent.parent / "data" / "schemas"
CHECKOUT_V1 = SCHEMAS / "2026-11-27-checkout-v1.sql"

CATALOGUE = {
    "columns": "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity "
    "FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'kontor_schema'",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE connamespace = 'public'::regnamespace",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "functions": "SELECT proname, pg_get_function_identity_arguments(oid), md5(prosrc) FROM pg_proc "
    "WHERE pronamespace = 'public'::regnamespace",
    "triggers": "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal",
}


@pytest.fixture
async def scratch(database_url: str) -> AsyncIterator[list[asyncpg.Connection]]:
    """Two empty databases on the test server, dropped afterwards."""
    names = [f"kontor_upgrade_{secrets.token_hex(4)}" for _ in range(2)]
    admin = await asyncpg.connect(database_url)
    conns: list[asyncpg.Connection] = []
    try:
        for name in names:
            await admin.execute(f'CREATE DATABASE "{name}"')
            conns.append(await asyncpg.connect(urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))))
        yield conns
    finally:
        for conn in conns:
            await conn.close()
        for name in names:
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


async def test_checkout_v1_database_is_taken_to_v2(scratch: list[asyncpg.Connection]) -> None:
    old, fresh = scratch
    await old.execute(CHECKOUT_V1.read_text())
    await _v1_books(old)
    assert await apply_schema(old) is True
    assert await apply_schema(old) is False  # applied once

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

    await apply_schema(fresh)
    for name, query in CATALOGUE.items():
        upgraded, installed = set(map(tuple, await old.fetch(query))), set(map(tuple, await fresh.fetch(query)))
        assert upgraded - installed == set(), f"{name}: only in the upgraded database"
        assert installed - upgraded == set(), f"{name}: only in a fresh install"

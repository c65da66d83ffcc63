"""Orders created under Checkout v1 keep working through v2: the business code's settings carried over from v1
must be replaced before Kontor calls Amazon; then a v1 order reference is the charge permission, its open
authorization a charge Kontor captures, and its capture a charge Kontor refunds (Amazon's v2 manages v1 objects).

The v1 orders are seeded as the schema upgrade leaves them (tests/integration/test_schema_upgrade.py checks that
step): the order with its v1 order reference as charge permission, the authorization and capture as charges."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from ledger.context import Kontor
from tests.conftest import Simulator, Tenant
from tests.e2e.amazon import Shop, connect, item, make_shop, shared_key


async def seed_v1_order(shop: Shop, pool: asyncpg.Pool, ref: str, gross: str, *, captured: bool) -> dict[str, Any]:
    """A v1 order (one item) at Amazon and in Kontor's tables; captured: a one-step order paid at checkout."""
    legacy = (
        await shop.sim.control(
            "POST",
            "legacy-orders",
            json={
                "merchant_id": shop.merchant_id,
                "amount": gross,
                **({"captured": gross} if captured else {"authorized": gross}),
            },
        )
    ).json()
    minor = int(gross.replace(".", ""))
    merchant, execution = shop.tenant.merchant_id, "one_step" if captured else "two_step"
    await pool.execute(
        "INSERT INTO orders (merchant_id, business, order_ref, customer, order_date, charge_permission_id, "
        "payment_execution, status, gross_minor, bill_to, request_sha256) VALUES ($1, 1001, $2, $3, '2026-03-20', $4, "
        "$5, 'authorized', $6, '{}', '\\x00')",
        merchant,
        ref,
        shop.customer,
        legacy["order_reference_id"],
        execution,
        minor,
    )
    await pool.execute(
        "INSERT INTO order_items (merchant_id, business, order_ref, item_ref, position_type, description, quantity, "
        "gross_unit_minor, vat_rate, state) VALUES ($1, 1001, $2, 1, 'SALES_ARTICLE', 'v1 article', 1, $3, 19, 'open')",
        merchant,
        ref,
        minor,
    )
    entry_id = None
    if captured:  # the capture was booked under v1: Dr PSP / Cr AR
        posted = await shop.tenant.post_entry(
            [{"account": "1210", "debit": gross}, {"account": "1400", "customer": shop.customer, "credit": gross}],
            date="2026-03-20",
            description=f"Amazon Pay capture {legacy['capture_id']} (Checkout v1)",
        )
        assert posted.status_code == 201, posted.text
        entry_id = posted.json()["id"]
        paid_out = await shop.tenant.post_entry(  # settled and paid out under v1: Amazon owes nothing for it
            [{"account": "1200", "debit": gross}, {"account": "1210", "credit": gross}],
            date="2026-03-25",
            description="Amazon Pay payout (Checkout v1)",
        )
        assert paid_out.status_code == 201, paid_out.text
    charge = legacy["capture_id"] if captured else legacy["authorization_id"]
    await pool.execute(
        "INSERT INTO amazon_charges (merchant_id, business, order_ref, charge_id, charge_permission_id, amount_minor, "
        "captured_minor, state, entry_id, settlement_id) VALUES ($1, 1001, $2, $3, $4, $5, $6, $7, $8, $9)",
        merchant,
        ref,
        charge,
        legacy["order_reference_id"],
        minor,
        minor if captured else 0,
        "Captured" if captured else "Authorized",
        entry_id,
        "V1SETTLED" if captured else None,  # v1 captures were settled before the switch
    )
    return legacy


async def test_v1_settings_must_be_replaced_before_amazon_is_called(
    tenant: Tenant, simulator: Simulator, pool: asyncpg.Pool
) -> None:
    shop = await make_shop(tenant, simulator)
    await pool.execute(  # as the upgrade leaves a v1 business code: MWS settings, no v2 credentials
        "UPDATE amazon_pay_settings SET access = 'v1', public_key_id = NULL, private_key_sealed = NULL, "
        "legacy_mws_auth_token = 'amzn.mws.legacy' WHERE merchant_id = $1",
        tenant.merchant_id,
    )
    shown = (await tenant.client.get(tenant.url("/amazon-pay/settings"), headers=tenant.headers())).json()
    assert (shown["access"], shown["upgrade_required"]) == ("v1", True)
    refused = await shop.create_order("v1-x", [item(1, "10.00")])
    assert (refused.status_code, refused.json()["code"]) == (409, "amazon_pay_upgrade_required")
    account = {"merchant_id": shop.merchant_id, "public_key_id": shop.public_key_id}
    upgraded = await connect(tenant, {**account, "private_key": shared_key()[0]})
    assert upgraded.status_code == 200, upgraded.text
    assert (upgraded.json()["access"], upgraded.json()["upgrade_required"]) == ("keys", False)
    assert (
        await pool.fetchval(
            "SELECT legacy_mws_auth_token FROM amazon_pay_settings WHERE merchant_id = $1", tenant.merchant_id
        )
        is None
    ), "the MWS token is dropped once the v2 credentials work"


async def test_a_v1_two_step_order_is_captured_refunded_and_closed_through_v2(
    tenant: Tenant, simulator: Simulator, pool: asyncpg.Pool, ctx: Kontor
) -> None:
    shop = await make_shop(tenant, simulator, "two_step")
    legacy = await seed_v1_order(shop, pool, "v1-a", "80.00", captured=False)
    invoice = await shop.invoice("v1-a", "v1-a-I1", [1])
    assert invoice.status_code == 201, invoice.text
    assert [(c["charge_id"], c["state"], c["captured"]) for c in invoice.json()["charges"]] == [
        (legacy["authorization_id"], "Captured", "80.00")
    ]
    order = await shop.order("v1-a")
    assert (order["status"], order["charge_permission_id"]) == ("invoiced", legacy["order_reference_id"])
    ret = await shop.document(
        "v1-a",
        "returns",
        {
            "return_reference": "v1-a-R1",
            "return_date": "2026-11-25",
            "invoice_reference": "v1-a-I1",
            "reason": "CUSTOMER_RETURN",
            "items": [{"item_reference": 1}],
        },
    )
    assert (ret.status_code, ret.json()["refunded"]) == (201, "80.00")
    await shop.process_refunds()
    await shop.drain_ipns()
    assert [r["state"] for r in (await shop.order("v1-a"))["refunds"]] == ["Refunded"]
    await shop.assert_books(("BALANCED", "0.00"))


async def test_a_v1_one_step_order_is_refunded_and_its_open_items_cancelled_through_v2(
    tenant: Tenant, simulator: Simulator, pool: asyncpg.Pool, app_client: httpx.AsyncClient
) -> None:
    shop = await make_shop(tenant, simulator)
    legacy = await seed_v1_order(shop, pool, "v1-b", "45.00", captured=True)
    assert await shop.customer_state() == ("CREDIT", "45.00")  # paid under v1, not yet shipped
    cancelled = await shop.document(
        "v1-b",
        "cancellations",
        {
            "cancellation_reference": "v1-b-C1",
            "cancellation_date": "2026-11-25",
            "reason": "OUT_OF_STOCK",
            "items": [{"item_reference": 1}],
        },
    )
    assert cancelled.status_code == 201, cancelled.text
    assert [(r["amount"], r["state"]) for r in cancelled.json()["refunds"]] == [("45.00", "RefundInitiated")]
    at_amazon = shop.sim.sim.merchants[shop.merchant_id].refunds
    assert [r.charge_id for r in at_amazon.values()] == [legacy["capture_id"]]  # the v1 capture id as chargeId
    await shop.process_refunds()
    await shop.drain_ipns()
    order = await shop.order("v1-b")
    assert (order["status"], order["charge_permission_state"]) == ("cancelled", "Closed")
    await shop.assert_books(("BALANCED", "0.00"))

"""Whose Amazon merchant account a business code connects: the credentials must act for the account named (QA
finding 3), in its region and environment (finding 12), and a business code moves to another account only when
no order of the current one is open (finding 10)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import httpx

from payments.amazon.sim_model import SettlementEvent
from tests.conftest import Simulator, Tenant, make_tenant
from tests.e2e.amazon import Shop, amazon_merchant, connect, item, make_shop, shared_key


async def paid_out(simulator: Simulator, merchant_id: str) -> None:
    """The account has been paid out by Amazon before (a capture settled and transferred): a disbursement names it."""
    merchant = simulator.sim.merchants[merchant_id]
    merchant.events.append(SettlementEvent(datetime.now(UTC), "Capture", f"{merchant_id}-C1", "", "", 5000))
    await simulator.control("POST", "settlements", json={"merchant_id": merchant_id})


async def put(tenant: Tenant, body: dict[str, Any]) -> httpx.Response:
    return await tenant.client.put(tenant.url("/amazon-pay/settings"), headers=tenant.headers(), json=body)


def keys_of(account: dict[str, Any], merchant_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "amazon_merchant_id": merchant_id or account["merchant_id"],
        "public_key_id": account["public_key_id"],
        "private_key": account["private_key"],
        "sandbox": True,
        **extra,
    }


async def test_keys_of_another_account_cannot_claim_a_merchant_id(
    tenant: Tenant, simulator: Simulator, app_client: httpx.AsyncClient
) -> None:
    """QA: a PUT naming the victim's merchant id with the squatter's own keys was accepted; the owner then got 409."""
    victim = await amazon_merchant(simulator)
    await paid_out(simulator, victim["merchant_id"])
    squatter_account = await amazon_merchant(simulator)
    await paid_out(simulator, squatter_account["merchant_id"])
    squatter = await make_tenant(app_client, name="Squatter GmbH")
    r = await put(squatter, keys_of(squatter_account, victim["merchant_id"]))
    assert (r.status_code, r.json()["code"]) == (422, "amazon_pay_credentials_invalid"), r.text
    assert r.json()["errors"][0]["field"] == "amazon_merchant_id"
    assert squatter_account["merchant_id"] in r.json()["detail"]
    owner = await put(tenant, keys_of(victim))
    assert owner.status_code == 200, owner.text


async def test_an_unproven_claim_yields_to_the_accounts_own_credentials(
    tenant: Tenant, simulator: Simulator, app_client: httpx.AsyncClient
) -> None:
    """A squatter whose own account was never paid out cannot be told apart at once; its claim stays unproven and
    the owner, whose keys Amazon's payouts show to act for the account, takes it over."""
    victim = await amazon_merchant(simulator)
    await paid_out(simulator, victim["merchant_id"])
    fresh = await amazon_merchant(simulator)
    squatter = await make_tenant(app_client, name="Squatter GmbH")
    claimed = await put(squatter, keys_of(fresh, victim["merchant_id"]))
    assert claimed.status_code == 200, claimed.text
    owner = await put(tenant, keys_of(victim))
    assert owner.status_code == 200, owner.text
    squatted = Shop(tenant=squatter, sim=simulator, merchant_id=fresh["merchant_id"])
    refused = await squatted.create_order("sq-1", [item(1, "10.00")])
    assert (refused.status_code, refused.json()["code"]) == (409, "amazon_merchant_taken")
    again = await put(squatter, keys_of(fresh, victim["merchant_id"]))
    assert (again.status_code, again.json()["code"]) == (409, "amazon_merchant_taken")
    shop = Shop(tenant=tenant, sim=simulator, merchant_id=victim["merchant_id"])
    assert (await shop.create_order("own-1", [item(1, "10.00")])).status_code == 201
    await shop.assert_books(("CREDIT", "10.00"))  # its IPNs reach the owner's books


async def test_a_delegated_token_proves_the_account(
    tenant: Tenant, simulator: Simulator, app_client: httpx.AsyncClient
) -> None:
    victim = await amazon_merchant(simulator)
    squatter = await make_tenant(app_client, name="Squatter GmbH")
    assert (await put(squatter, keys_of(await amazon_merchant(simulator), victim["merchant_id"]))).status_code == 200
    grant = await simulator.control(
        "POST",
        "providers/grants",
        json={"merchant_id": victim["merchant_id"], "public_key_id": simulator.provider_key_id},
    )
    owner = await put(
        tenant,
        {
            "amazon_merchant_id": victim["merchant_id"],
            "mws_auth_token": grant.json()["mws_auth_token"],
            "sandbox": True,
        },
    )
    assert owner.status_code == 200, owner.text


async def test_a_key_of_the_other_environment_is_refused(tenant: Tenant, simulator: Simulator) -> None:
    """QA: a sandbox account's merchant id with live keys (and sandbox false) was accepted: only the key id's prefix
    was compared. A key id without prefix belongs to one environment too."""
    _, public = shared_key()
    legacy_id = "LEGACY" + secrets.token_hex(8).upper()
    r = await simulator.control(
        "POST",
        "merchants",
        json={"region": "eu", "environment": "Sandbox", "public_key_pem": public, "public_key_id": legacy_id},
    )
    account = {**r.json(), "private_key": shared_key()[0]}
    live = await put(tenant, keys_of(account, sandbox=False))
    assert live.status_code == 422, live.text
    assert {e["field"] for e in live.json()["errors"]} >= {"public_key_id", "sandbox"}
    assert (await put(tenant, keys_of(account))).status_code == 200


async def test_the_region_must_be_the_accounts_and_settle_the_business_codes_currency(
    tenant: Tenant, simulator: Simulator
) -> None:
    """QA: an na/USD account connected to a DE/EUR business code was accepted (region defaulted to eu), and region
    na for an EU account too."""
    eu = await amazon_merchant(simulator)
    na_for_eur = await put(tenant, keys_of(eu, region="na"))
    assert (na_for_eur.status_code, na_for_eur.json()["errors"][0]["field"]) == (422, "region")
    assert "settled in the eu region" in na_for_eur.json()["detail"]
    us = await amazon_merchant(simulator, region="na", currency="USD")
    wrong = await put(tenant, keys_of(us))  # the region follows the EUR books: eu, where this account is not
    assert wrong.status_code == 422, wrong.text
    assert "region" in {e["field"] for e in wrong.json()["errors"]}
    ok = await put(tenant, keys_of(eu))
    assert (ok.status_code, ok.json()["region"]) == (200, "eu")


async def test_a_private_key_with_anything_around_it_is_refused(tenant: Tenant, simulator: Simulator) -> None:
    account = await amazon_merchant(simulator)
    pem = account["private_key"]
    for text in (pem + "\u0000", "my key:\n" + pem, pem + pem, "x"):
        r = await put(tenant, keys_of(account, private_key=text))
        assert (r.status_code, r.json()["code"]) == (422, "amazon_pay_credentials_invalid"), r.text
        assert r.json()["errors"][0]["field"] == "private_key"


async def test_a_business_code_moves_to_another_account_only_without_open_orders(
    tenant: Tenant, simulator: Simulator
) -> None:
    """QA finding 10: moving while orders were open was accepted; the next cancellation answered "refunded": "20.00"
    although Amazon declined the refund (ResourceNotFound at the new account)."""
    shop = await make_shop(tenant, simulator)
    assert (await shop.create_order("mv-1", [item(1, "20.00"), item(2, "30.00")])).status_code == 201
    other = await amazon_merchant(simulator)
    refused = await connect(tenant, other)
    assert (refused.status_code, refused.json()["code"]) == (409, "amazon_merchant_change_refused"), refused.text
    assert "mv-1" in refused.json()["detail"]
    assert (await shop.invoice("mv-1", "MV-I1", [1, 2])).status_code == 201
    moved = await connect(tenant, other)
    assert moved.status_code == 200, moved.text
    # a return of the old account's order: Amazon (the new account) declines the refund; nothing is reported refunded
    r = await shop.document(
        "mv-1",
        "returns",
        {
            "return_reference": "MV-R1",
            "return_date": "2026-11-25",
            "invoice_reference": "MV-I1",
            "reason": "CUSTOMER_RETURN",
            "items": [{"item_reference": 1}],
        },
    )
    assert r.status_code == 201, r.text
    assert [(x["state"], x["reason"]) for x in r.json()["refunds"]] == [("Declined", "ResourceNotFound")]
    assert r.json()["refunded"] == "0.00"
    assert await shop.customer_state() == ("CREDIT", "20.00")

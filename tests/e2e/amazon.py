"""Helpers for the order and Amazon Pay tests: a merchant connected to the Amazon Pay (v2) simulator with its own
API keys, and orders whose checkout sessions a simulated buyer completed on Amazon's page."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from payments.amazon.client import Credentials
from tests.conftest import Simulator, Tenant


@dataclass
class Shop:
    tenant: Tenant
    sim: Simulator
    merchant_id: str  # the Amazon merchant id
    execution: str = "one_step"
    customer: str = "C-100"
    public_key_id: str = ""
    region: str = "eu"

    def credentials(self) -> Credentials:
        """The merchant's own credentials (the shared test key under its public key id)."""
        key = serialization.load_pem_private_key(shared_key()[0].encode(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        region = "na" if self.region == "na" else "jp" if self.region == "jp" else "eu"
        return Credentials(self.merchant_id, self.public_key_id, key, region, True)

    @property
    def client(self) -> httpx.AsyncClient:
        return self.tenant.client

    def orders(self, path: str = "") -> str:
        return self.tenant.url(f"/customers/{self.customer}/orders{path}")

    async def checkout(self, amount: str, **buyer: Any) -> str:
        """A buyer finishes Amazon Pay's hosted checkout for `amount`; returns the checkout session id."""
        intent = "AuthorizeWithCapture" if self.execution == "one_step" else "Authorize"
        r = await self.sim.control(
            "POST",
            "checkout-sessions",
            json={"merchant_id": self.merchant_id, "amount": amount, "payment_intent": intent, **buyer},
        )
        session: str = r.json()["checkoutSessionId"]
        return session

    async def create_order(
        self, ref: str, items: list[dict[str, Any]], *, buyer: dict[str, Any] | None = None, **extra: Any
    ) -> httpx.Response:
        """Checkout (the buyer on Amazon's page) for the items' total, then the payment service reports the order."""
        total = sum(Decimal(i["gross_unit_price"]) * i.get("quantity", 1) for i in items)
        session = extra.pop("checkout_session_id", None) or await self.checkout(f"{total:.2f}", **(buyer or {}))
        body = {
            "order_reference": ref,
            "order_date": "2026-11-20",
            "items": items,
            "payment_method": {"checkout_session_id": session},
            "bill_to": {"first_name": "Erika", "last_name": "Mustermann", "country_code": "DE"},
            **extra,
        }
        return await self.client.post(self.orders(), json=body, headers=self.tenant.headers(self.tenant.poster_key))

    async def document(self, order: str, kind: str, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(
            self.orders(f"/{order}/{kind}"), json=body, headers=self.tenant.headers(self.tenant.poster_key)
        )

    async def invoice(self, order: str, ref: str, items: list[int], **extra: Any) -> httpx.Response:
        return await self.document(
            order,
            "invoices",
            {
                "invoice_reference": ref,
                "invoice_date": "2026-11-21",
                "items": [{"item_reference": i} for i in items],
                **extra,
            },
        )

    async def order(self, ref: str) -> dict[str, Any]:
        r = await self.client.get(self.orders(f"/{ref}"), headers=self.tenant.headers(self.tenant.accountant_key))
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def customer_state(self, customer: str | None = None) -> tuple[str, str]:
        account = (await self.tenant.get(f"/customers/{customer or self.customer}/account")).json()
        return account["state"], account["balance"]

    async def balance(self, number: str) -> str:
        b = (await self.tenant.get(f"/accounts/{number}/balance")).json()["balances"][0]
        sign = "-" if b["side"] == "CREDIT" else ""
        return f"{sign}{b['balance']}"

    async def chargeback(self, order: str, amount: str, **extra: Any) -> dict[str, Any]:
        """The buyer's bank charges back `amount` of the order's first captured charge (Amazon files a dispute)."""
        charges = (await self.order(order))["charges"]
        charge_id = next(c["charge_id"] for c in charges if c["state"] == "Captured")
        r = await self.sim.control(
            "POST",
            "disputes",
            json={"merchant_id": self.merchant_id, "charge_id": charge_id, "amount": amount, **extra},
        )
        dispute: dict[str, Any] = r.json()
        return dispute

    async def resolve_dispute(self, dispute_id: str, resolution: str) -> None:
        await self.sim.control(
            "POST",
            "disputes/resolve",
            json={"merchant_id": self.merchant_id, "dispute_id": dispute_id, "resolution": resolution},
        )

    async def process_refunds(self) -> None:
        await self.sim.control("POST", "refunds/process", json={"merchant_id": self.merchant_id})

    async def settlement_report(self) -> str:
        """Amazon closes a settlement period now: the report's flat file."""
        return (await self.sim.control("GET", "settlement-report", params={"merchant_id": self.merchant_id})).text

    async def amazon_owes(self) -> str:
        return str((await self.sim.control("GET", "balance", params={"merchant_id": self.merchant_id})).json()["owed"])

    async def drain_ipns(self) -> None:
        """Every IPN sent so far applied: the simulator's deliveries finished, and what the service deferred (an IPN
        that overtook Kontor's own record, Amazon briefly out of reach) retried now instead of after its backoff."""
        app = self.client._transport.app  # type: ignore[attr-defined]
        ctx, merchant_id = app.state.kontor, self.tenant.merchant_id
        plugin = next(p for p in app.plugins.init if hasattr(p, "process_ipns"))
        await self.sim.control("POST", "idle")
        for _ in range(50):
            await ctx.pool.execute(
                "UPDATE ipn_messages SET next_attempt_at = now() WHERE merchant_id = $1 AND state = 'pending'",
                merchant_id,
            )
            await plugin.process_ipns(ctx)
            pending = await ctx.pool.fetchval(
                "SELECT count(*) FROM ipn_messages WHERE merchant_id = $1 AND state = 'pending'", merchant_id
            )
            if not pending:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("IPNs still pending")

    async def assert_books(self, customer_state: tuple[str, str] | None = None) -> None:
        """What every scenario ends with: the books balance, PSP equals what Amazon owes, the customer's state."""
        await self.drain_ipns()
        trial = (await self.tenant.get("/reports/trial-balance")).json()
        assert trial["balanced"] is True, trial
        assert await self.balance("1210") == await self.amazon_owes(), "PSP clearing equals what Amazon owes"
        if customer_state is not None:
            assert await self.customer_state() == customer_state


def item(ref: int, price: str, *, vat: str = "19", quantity: int = 1, kind: str = "SALES_ARTICLE") -> dict[str, Any]:
    return {
        "item_reference": ref,
        "description": f"Article {ref}",
        "gross_unit_price": price,
        "vat_rate": vat,
        "quantity": quantity,
        "position_type": kind,
    }


@cache
def shared_key() -> tuple[str, str]:
    """One RSA key pair for every test merchant (each registers it under its own public key id): (private, public)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


async def amazon_merchant(sim: Simulator, **terms: Any) -> dict[str, Any]:
    """A merchant account at the simulator with an API key (Integration Central's "use an existing public key");
    `terms` go to the simulator (reserve_percent, chargeback_fee, currency, ...). Returns its ids and private key."""
    private, public = shared_key()
    key_id = "SANDBOX-" + secrets.token_hex(12).upper()
    r = await sim.control(
        "POST", "merchants", json={"region": "eu", "public_key_pem": public, "public_key_id": key_id, **terms}
    )
    account: dict[str, Any] = {**r.json(), "private_key": private}
    return account


async def connect(tenant: Tenant, account: dict[str, Any], execution: str = "one_step") -> httpx.Response:
    return await tenant.client.put(
        tenant.url("/amazon-pay/settings"),
        headers=tenant.headers(),
        json={
            "amazon_merchant_id": account["merchant_id"],
            "public_key_id": account["public_key_id"],
            "private_key": account["private_key"],
            "region": account.get("region", "eu"),
            "sandbox": True,
            "payment_execution": execution,
        },
    )


async def make_shop(tenant: Tenant, sim: Simulator, execution: str = "one_step", **terms: Any) -> Shop:
    """A merchant connected to Amazon Pay with its own keys; `terms` go to the simulator's merchant account."""
    account = await amazon_merchant(sim, **terms)
    r = await connect(tenant, account, execution)
    assert r.status_code == 200, r.text
    return Shop(
        tenant=tenant,
        sim=sim,
        merchant_id=account["merchant_id"],
        execution=execution,
        public_key_id=account["public_key_id"],
        region=account.get("region", "eu"),
    )


async def eventually(check: Any, timeout_s: float = 5.0) -> None:
    """Wait for background IPN processing to reach a state (the IPN is acknowledged before it is applied)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await check()
            return
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def paid_order(shop: Shop, ref: str, price: str = "50.00") -> None:
    assert (await shop.create_order(ref, [item(1, price), item(2, "10.00")])).status_code == 201
    assert (await shop.invoice(ref, f"I-{ref}", [1, 2])).status_code == 201

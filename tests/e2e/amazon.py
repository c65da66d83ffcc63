"""Helpers for the order and Amazon Pay tests: a merchant with Amazon Pay set up against the simulator."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import Simulator, Tenant


@dataclass
class Shop:
    tenant: Tenant
    sim: Simulator
    seller_id: str
    customer: str = "C-100"

    @property
    def client(self) -> httpx.AsyncClient:
        return self.tenant.client

    def orders(self, path: str = "") -> str:
        return self.tenant.url(f"/customers/{self.customer}/orders{path}")

    async def create_order(self, ref: str, items: list[dict[str, Any]], **extra: Any) -> httpx.Response:
        body = {
            "order_reference": ref,
            "order_date": "2026-11-20",
            "items": items,
            "payment_method": {"amazon_order_reference_id": new_amazon_reference(), **extra.pop("payment", {})},
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

    async def amazon_owes(self) -> str:
        return str((await self.sim.control("GET", "balance", params={"seller_id": self.seller_id})).json()["owed"])

    async def assert_books(self, customer_state: tuple[str, str] | None = None) -> None:
        """What every scenario ends with: the books balance, PSP equals what Amazon owes, the customer's state."""
        trial = (await self.tenant.get("/reports/trial-balance")).json()
        assert trial["balanced"] is True, trial
        await self.sim.control("POST", "idle")
        assert await self.balance("1210") == await self.amazon_owes(), "PSP clearing equals what Amazon owes"
        if customer_state is not None:
            assert await self.customer_state() == customer_state


def new_amazon_reference() -> str:
    return f"S02-{secrets.randbelow(10**7):07d}-{secrets.randbelow(10**7):07d}"


def item(ref: int, price: str, *, vat: str = "19", quantity: int = 1, kind: str = "SALES_ARTICLE") -> dict[str, Any]:
    return {
        "item_reference": ref,
        "description": f"Article {ref}",
        "gross_unit_price": price,
        "vat_rate": vat,
        "quantity": quantity,
        "position_type": kind,
    }


async def make_shop(tenant: Tenant, sim: Simulator, execution: str = "one_step", **terms: Any) -> Shop:
    """A merchant with Amazon Pay; `terms` go to the simulator's seller (reserve_percent, chargeback_fee)."""
    seller_id = "A" + secrets.token_hex(7).upper()
    token = "amzn.mws." + secrets.token_hex(8)
    await sim.control("POST", "sellers", json={"seller_id": seller_id, "mws_auth_token": token, **terms})
    r = await tenant.client.put(
        tenant.url("/amazon-pay/settings"),
        headers=tenant.headers(),
        json={
            "seller_id": seller_id,
            "mws_auth_token": token,
            "region": "eu",
            "sandbox": True,
            "payment_execution": execution,
        },
    )
    assert r.status_code == 200, r.text
    return Shop(tenant=tenant, sim=sim, seller_id=seller_id)


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

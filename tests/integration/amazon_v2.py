"""Helpers for the Amazon Pay v2 tests: the simulator served over real HTTP, merchants with their keys, buyers.

One RSA key pair is generated per test session and registered under a new public key id for each merchant
("use an existing public key"), so that tests do not spend their time generating keys.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from payments.amazon.client import AmazonPayClient, Amount, CheckoutSession, Credentials
from payments.amazon.simulator import AmazonPaySimulator, public_key_pem
from tests.conftest import free_port, serving

__all__ = ["Amazon", "served_simulator", "shared_key"]


@cache
def shared_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_from_pem(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@dataclass
class Amazon:
    sim: AmazonPaySimulator
    url: str
    http: httpx.AsyncClient
    client: AmazonPayClient

    async def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, f"{self.url}/sim/{path}", **kwargs)
        assert response.status_code < 300, response.text
        return response.json() if response.headers.get("content-type", "").startswith("application/json") else None

    async def merchant(
        self, *, region: str = "eu", currency: str | None = None, environment: str = "Sandbox", **extra: Any
    ) -> Credentials:
        key_id = ("SANDBOX-" if environment == "Sandbox" else "LIVE-") + secrets.token_hex(12).upper()
        body = {
            "region": region,
            "environment": environment,
            "public_key_pem": public_key_pem(shared_key().public_key()),
            "public_key_id": key_id,
            **({"currency": currency} if currency else {}),
            **extra,
        }
        created = await self.control("POST", "merchants", json=body)
        return Credentials(
            merchant_id=created["merchant_id"],
            public_key_id=created["public_key_id"],
            private_key=shared_key(),
            region=region,  # type: ignore[arg-type]
            sandbox=environment == "Sandbox",
        )

    async def session(self, creds: Credentials, amount: str, **extra: Any) -> str:
        """The buyer leaves Amazon's page: -> the checkout session id."""
        body = {"merchant_id": creds.merchant_id, "amount": amount, **extra}
        created = await self.control("POST", "checkout-sessions", json=body)
        return str(created["checkoutSessionId"])

    async def checkout(self, creds: Credentials, amount: Amount, **extra: Any) -> CheckoutSession:
        """A buyer's session completed by the merchant (default: paymentIntent Authorize)."""
        from ledger.money import format_amount

        session_id = await self.session(creds, format_amount(amount.minor, amount.currency), **extra)
        return await self.client.complete_checkout_session(
            creds, session_id, amount, idempotency_key="cs-" + secrets.token_hex(8)
        )


@asynccontextmanager
async def served_simulator(**client_options: Any) -> AsyncIterator[Amazon]:
    """The simulator on a free port, an httpx client, and Kontor's client pointed at it (fast retries)."""
    sim = AmazonPaySimulator()
    options = {"backoff_s": 0.01, **client_options}
    async with serving(sim.app(), free_port()) as url, httpx.AsyncClient() as http:
        try:
            yield Amazon(sim, url, http, AmazonPayClient(http, endpoint=url, **options))
        finally:
            await sim.aclose()

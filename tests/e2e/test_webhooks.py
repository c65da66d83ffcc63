"""Notifications to the merchant: callback subscriptions, signed webhook delivery from the outbox, retries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from litestar import Litestar, Request, Response, post
from litestar.params import FromPath

from ledger.context import Kontor
from payments.webhooks import WebhookWorker, verify_signature
from tests.conftest import Simulator, Tenant, free_port, serving
from tests.e2e.amazon import Shop, item, make_shop


@dataclass
class Receiver:
    url: str
    statuses: dict[str, int] = field(default_factory=dict)  # hook name -> status to answer
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    box = Receiver(url="")

    @post("/hook/{name:str}", status_code=200)
    async def hook(name: FromPath[str], request: Request[Any, Any, Any]) -> Response[None]:
        box.received.append((name, dict(request.headers), await request.body()))
        return Response(None, status_code=box.statuses.get(name, 200))

    async with serving(Litestar([hook]), free_port()) as url:
        box.url = url
        yield box


@pytest.fixture
async def shop(tenant: Tenant, simulator: Simulator) -> Shop:
    return await make_shop(tenant, simulator)


def worker_of(shop: Shop) -> WebhookWorker:
    plugin = next(p for p in shop.client._transport.app.plugins.init if hasattr(p, "webhooks"))  # type: ignore[attr-defined]
    worker: WebhookWorker = plugin.webhooks
    return worker


async def run_worker(worker: WebhookWorker, ctx: Kontor) -> None:
    """One round of the delivery job, drained: the suite shares one outbox, and other tests leave thousands of
    events (and deliveries to dead URLs, which then wait for their backoff) ahead of this test's."""
    while await worker.fan_out(ctx):
        pass
    for _ in range(20):
        if not await worker.deliver_due(ctx):
            return


async def subscribe(shop: Shop, url: str, types: list[str]) -> Any:
    t = shop.tenant
    return await t.client.post("/v1/notification-callbacks", json={"url": url, "types": types}, headers=t.headers())


async def test_subscriptions_are_validated_and_the_secret_shown_once(shop: Shop, receiver: Receiver) -> None:
    t = shop.tenant
    unknown = await subscribe(shop, f"{receiver.url}/hook/a", ["invoice.created", "order.teleported"])
    assert (unknown.status_code, unknown.json()["code"]) == (422, "unknown_notification_type")
    for url in ("ftp://example.com/x", "https://user:pw@example.com/x", "/relative"):
        bad = await subscribe(shop, url, ["invoice.created"])
        assert (bad.status_code, bad.json()["code"]) == (422, "invalid_callback_url"), url
    created = await subscribe(shop, f"{receiver.url}/hook/a", ["invoice.created"])
    assert created.status_code == 201, created.text
    assert created.json()["secret"].startswith("whsec_")
    listed = await t.client.get("/v1/notification-callbacks", headers=t.headers())
    assert [c["callback_id"] for c in listed.json()] == [created.json()["callback_id"]]
    assert "whsec_" not in listed.text
    forbidden = await t.client.get("/v1/notification-callbacks", headers=t.headers(t.poster_key))
    assert forbidden.status_code == 403
    gone = await t.client.delete(f"/v1/notification-callbacks/{created.json()['callback_id']}", headers=t.headers())
    assert (gone.status_code, gone.json()["active"]) == (200, False)


async def test_events_are_delivered_signed_and_failures_retried_with_backoff(
    shop: Shop, receiver: Receiver, ctx: Kontor, pool: asyncpg.Pool
) -> None:
    t = shop.tenant
    ok = (await subscribe(shop, f"{receiver.url}/hook/ok", ["invoice.created", "payment.received"])).json()
    flaky = (await subscribe(shop, f"{receiver.url}/hook/flaky", ["invoice.created"])).json()
    receiver.statuses["flaky"] = 503
    assert (await shop.create_order("wh-1", [item(1, "119.00")])).status_code == 201
    assert (await shop.invoice("wh-1", "I-wh-1", [1])).status_code == 201
    worker = worker_of(shop)
    await run_worker(worker, ctx)

    delivered = [(h, b) for name, h, b in receiver.received if name == "ok"]
    types = sorted(h["kontor-event-type"] for h, _ in delivered)
    assert types == ["invoice.created", "payment.received"]
    for headers, body in delivered:
        assert verify_signature(ok["secret"], headers["kontor-signature"], body)
        assert not verify_signature(flaky["secret"], headers["kontor-signature"], body)
        assert not verify_signature(ok["secret"], headers["kontor-signature"], body + b" ")
        stamp = int(headers["kontor-signature"].split(",")[0][2:])
        assert not verify_signature(ok["secret"], headers["kontor-signature"], body, now=stamp + 301)
    invoice = next(b for h, b in delivered if h["kontor-event-type"] == "invoice.created")
    assert b'"invoice_reference":"I-wh-1"' in invoice

    async def flaky_delivery() -> asyncpg.Record:
        row = await pool.fetchrow(
            "SELECT state, attempts, last_status, extract(epoch FROM next_attempt_at - now())::float AS wait_s "
            "FROM webhook_deliveries WHERE merchant_id = $1 AND callback_id = $2",
            t.merchant_id,
            flaky["callback_id"],
        )
        assert row is not None
        return row

    first = await flaky_delivery()
    assert (first["state"], first["attempts"], first["last_status"]) == ("pending", 1, 503)
    assert 25 < first["wait_s"] <= 30  # the first retry after the base delay
    for attempt, wait in ((2, 60), (3, None)):
        await pool.execute(
            "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE merchant_id = $1 AND callback_id = $2",
            t.merchant_id,
            flaky["callback_id"],
        )
        await run_worker(worker, ctx)
        row = await flaky_delivery()
        assert row["attempts"] == attempt
        if wait is not None:
            assert (row["state"], wait - 5 < row["wait_s"] <= wait) == ("pending", True)  # doubled
    assert row["state"] == "failed"  # the retry limit (3 in the tests) is reached
    assert sum(1 for name, _, _ in receiver.received if name == "flaky") == 3
    failed = await t.client.get("/v1/webhooks/deliveries", params={"state": "failed"}, headers=t.headers())
    assert [(d["callback_id"], d["type"], d["attempts"], d["last_error"]) for d in failed.json()["items"]] == [
        (flaky["callback_id"], "invoice.created", 3, "HTTP 503")
    ]
    everything = await t.client.get("/v1/webhooks/deliveries", params={"limit": 1}, headers=t.headers(t.accountant_key))
    assert everything.status_code == 200
    assert len(everything.json()["items"]) == 1
    assert everything.json()["next_after"] is not None
    await run_worker(worker, ctx)
    assert sum(1 for name, _, _ in receiver.received if name == "ok") == 2  # delivered once, not again

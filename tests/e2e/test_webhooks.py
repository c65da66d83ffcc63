"""Notifications to the merchant: callback subscriptions, signed webhook delivery from the outbox, retries."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar, Request, Response, post
from litestar.params import FromPath

from ledger.app import create_app
from ledger.config import Settings
from ledger.context import Kontor
from payments.egress import ADDRESS_REFUSED, NO_RESPONSE, webhook_client
from payments.webhooks import WebhookWorker, verify_signature
from tests.conftest import (
    FixedClock,
    Simulator,
    Tenant,
    client_for,
    free_port,
    make_tenant,
    plugins_for_tests,
    running,
    serving,
)
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


# --- where callbacks may point (security-04, security-11) ------------------------------------------------
@pytest.fixture(scope="module")
async def production(
    settings: Settings, clock: FixedClock, simulator: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """The service as configured in production: KONTOR_WEBHOOK_ALLOW_HTTP unset."""
    sns_root = tmp_path_factory.mktemp("sns-production") / "root.pem"
    sns_root.write_bytes(simulator.sim.identity.root_pem())
    application = create_app(
        settings, clock=clock, plugins=plugins_for_tests(simulator, sns_root, webhook_allow_http=False)
    )
    async with running(application), client_for(application) as client:
        yield client


def hosts_file_names() -> list[str]:
    """Names /etc/hosts maps to addresses that are not public (`vm`, the machine's own name, ...)."""
    names = []
    for line in Path("/etc/hosts").read_text().splitlines():
        address, *aliases = line.partition("#")[0].split() or [""]
        try:
            if ipaddress.ip_address(address.partition("%")[0]).is_global:
                continue
        except ValueError:
            continue
        names += [a for a in aliases if a.replace("-", "").replace(".", "").isalnum()]
    return sorted(set(names))


INTERNAL = [
    "https://localhost:5432/x",
    "https://LOCALHOST./x",
    "https://api.localhost/x",
    "https://127.0.0.1:5432/x",
    "https://127.0.0.2/x",
    "https://[::1]:5432/x",
    "https://[::ffff:127.0.0.1]/x",
    "https://[::ffff:7f00:1]/x",
    "https://10.0.0.1/x",
    "https://172.16.0.1/x",
    "https://192.168.1.1/x",
    "https://100.64.0.1/x",
    "https://169.254.169.254/latest/meta-data",
    "https://[fe80::1]/x",
    "https://[fc00::1]/x",
    "https://[fd12:3456::1]/x",
    "https://224.0.0.1/x",
    "https://[ff02::1]/x",
    "https://0.0.0.0/x",
    "https://[::]/x",
    "https://240.0.0.1/x",
    "https://[64:ff9b::7f00:1]/x",
    "https://[2002:7f00:1::1]/x",
]
NUMERIC = [  # other spellings of 127.0.0.1: refused everywhere, they mean different hosts to different parsers
    "https://0x7f000001:5432/x",
    "https://2130706433:5432/x",
    "https://127.1:5432/x",
    "https://017700000001:5432/x",
    "https://0:5432/x",
    "https://0177.0.0.1/x",
    "https://127.000.000.001/x",
    "https://example.123/x",
]
MALFORMED = [
    "https://[not-an-ip]/x",
    "https://hooks.example.com:99999/x",
    "https://hooks.example.com:0/x",
    "https://exa mple.com/x",
    "https://exa\tmple.com/x",
    "https://ex_ample.com/x",
    "https://-example.com/x",
    "https://münchen.example/x",
]


async def test_callback_urls_that_reach_internal_addresses_are_refused(production: httpx.AsyncClient) -> None:
    t = await make_tenant(production)
    for url in [*INTERNAL, *NUMERIC, *MALFORMED, *(f"https://{name}:5432/x" for name in hosts_file_names())]:
        r = await production.post(
            "/v1/notification-callbacks", json={"url": url, "types": ["balance.updated"]}, headers=t.headers()
        )
        assert r.status_code == 422, (url, r.text)
        assert (r.json()["code"], r.json()["errors"][0]["field"]) == ("invalid_callback_url", "url"), url
    public = [
        "https://93.184.215.14/hooks",
        "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:8443/h",
        "https://hooks.example.com/x",
    ]
    for url in public:  # a name that does not resolve (yet) is left to the check at delivery
        r = await production.post(
            "/v1/notification-callbacks", json={"url": url, "types": ["balance.updated"]}, headers=t.headers()
        )
        assert r.status_code == 201, (url, r.text)
    listed = await production.get("/v1/notification-callbacks", headers=t.headers())
    assert [c["url"] for c in listed.json()] == public


async def test_malformed_and_ambiguous_callback_urls_are_refused_in_development_too(shop: Shop) -> None:
    """security-11: '[not-an-ip]' answered 500, a port beyond 65535 and a space in the host were accepted."""
    for url in [*NUMERIC, *MALFORMED]:
        r = await subscribe(shop, url, ["balance.updated"])
        assert r.status_code == 422, (url, r.text)
        assert (r.json()["code"], r.json()["errors"][0]["field"]) == ("invalid_callback_url", "url"), url


async def test_delivery_checks_the_address_it_connects_to(
    shop: Shop, receiver: Receiver, ctx: Kontor, pool: asyncpg.Pool
) -> None:
    """A callback whose name resolves to a loopback address (accepted in development here; in production a name
    that resolved elsewhere at subscription, or a row from before these checks) is not delivered in production."""
    port = receiver.url.rsplit(":", 1)[1]
    callback = (await subscribe(shop, f"http://localhost:{port}/hook/named", ["invoice.created"])).json()
    assert (await shop.create_order("wh-ssrf", [item(1, "11.90")])).status_code == 201
    assert (await shop.invoice("wh-ssrf", "I-wh-ssrf", [1])).status_code == 201
    async with webhook_client(allow_private=False) as http:
        strict = WebhookWorker(http, attempts_max=3, backoff_s=30, timeout_s=5)
        await run_worker(strict, ctx)
    assert [name for name, _, _ in receiver.received if name == "named"] == []
    deliveries = await shop.tenant.client.get(
        "/v1/webhooks/deliveries", params={"callback_id": callback["callback_id"]}, headers=shop.tenant.headers()
    )
    assert [(d["state"], d["last_error"]) for d in deliveries.json()["items"]] == [("pending", ADDRESS_REFUSED)]
    await pool.execute(
        "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE merchant_id = $1", shop.tenant.merchant_id
    )
    await run_worker(worker_of(shop), ctx)  # the development worker may reach it
    assert len([name for name, _, _ in receiver.received if name == "named"]) == 1


async def test_a_failed_delivery_records_nothing_about_the_socket(
    shop: Shop, receiver: Receiver, ctx: Kontor, pool: asyncpg.Pool
) -> None:
    """security-04: the recorded errors told closed ports, plain-text and TLS services apart (an internal port
    scanner readable by every key). Whatever did not answer HTTP is recorded alike."""

    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
        await writer.drain()
        writer.close()

    plain_text = await asyncio.start_server(banner, "127.0.0.1", 0)
    text_port = plain_text.sockets[0].getsockname()[1]
    http_port = receiver.url.rsplit(":", 1)[1]
    targets = {
        "closed": f"https://127.0.0.1:{free_port()}/x",
        "plain text": f"https://127.0.0.1:{text_port}/x",
        "http, not tls": f"https://127.0.0.1:{http_port}/hook/tls",
        "answers garbage": f"http://127.0.0.1:{text_port}/x",
    }
    ids = {}
    for what, url in targets.items():
        ids[what] = (await subscribe(shop, url, ["invoice.created"])).json()["callback_id"]
    targets["stored before URLs were parsed strictly"] = "https://[not-an-ip]/x"
    ids["stored before URLs were parsed strictly"] = await pool.fetchval(
        "INSERT INTO notification_callbacks (merchant_id, url, types, secret) "
        "VALUES ($1, 'https://[not-an-ip]/x', '{invoice.created}', 'whsec_x') RETURNING callback_id",
        shop.tenant.merchant_id,
    )
    assert (await shop.create_order("wh-scan", [item(1, "11.90")])).status_code == 201
    assert (await shop.invoice("wh-scan", "I-wh-scan", [1])).status_code == 201
    try:
        await run_worker(worker_of(shop), ctx)
    finally:
        plain_text.close()
    listed = await shop.tenant.client.get(
        "/v1/webhooks/deliveries", params={"limit": "500"}, headers=shop.tenant.headers(shop.tenant.accountant_key)
    )
    errors = {d["callback_id"]: d["last_error"] for d in listed.json()["items"]}
    assert {what: errors[i] for what, i in ids.items()} == dict.fromkeys(targets, NO_RESPONSE)

    await pool.execute(  # recorded before errors were generic
        "UPDATE webhook_deliveries SET last_error = 'ConnectError: [SSL: WRONG_VERSION_NUMBER] wrong version number' "
        "WHERE merchant_id = $1",
        shop.tenant.merchant_id,
    )
    listed = await shop.tenant.client.get("/v1/webhooks/deliveries", headers=shop.tenant.headers())
    assert {d["last_error"] for d in listed.json()["items"]} == {NO_RESPONSE}

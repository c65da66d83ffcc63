"""Shared fixtures: a real PostgreSQL for the session, the service under test, tenants to play with.

Database: with KONTOR_TEST_DATABASE_URL (e.g. postgresql://postgres@127.0.0.1:5432/test) the suite
creates a fresh database on that server and drops it at the end; without it, it starts the embedded
PostgreSQL in a temporary directory (deleted afterwards). Nothing is ever mocked.

Isolation between tests: every test gets its own merchant, so tests never see each other's books.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from litestar import Litestar

from ledger.app import create_app
from ledger.config import Settings
from ledger.context import Kontor
from ledger.db import apply_schema, create_pool
from ledger.embedded import start_embedded
from ledger.secrets import generate_key
from tests import network_guard

network_guard.install()  # every test fails when Kontor sends an HTTP request inside a database transaction
OPERATOR_KEY = "operator-test-key-" + secrets.token_hex(8)
# the session's secret key (never a key file in the user's data dir); CLI processes get it as KONTOR_SECRET_KEY
SECRET_KEY = generate_key()


@pytest.fixture(autouse=True)
def no_network_in_transactions() -> Iterator[None]:
    """No outbound HTTP call (Amazon Pay, SNS certificates, webhooks) while the calling task holds a database
    transaction open (tests/network_guard.py)."""
    yield
    found = network_guard.drain()
    if found:
        pytest.fail(f"{len(found)} network call(s) inside a database transaction:\n{network_guard.describe(found)}")


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    given = os.environ.get("KONTOR_TEST_DATABASE_URL")
    if not given:
        with tempfile.TemporaryDirectory(prefix="kontor-test-") as tmp:
            embedded = start_embedded(Path(tmp), delete_on_stop=True)
            try:
                yield embedded.uri
            finally:
                embedded.stop()
        return
    name = f"kontor_test_{os.getpid()}_{secrets.token_hex(3)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(given)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(given, name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, size_max=60, application_name="kontor-tests")
    async with pool.acquire() as conn:
        await apply_schema(conn)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        operator_key=OPERATOR_KEY,
        secret_key=SECRET_KEY,
        scheduler_enabled=False,
        rate_limit_per_second=100_000,
        log_level="WARNING",
        db_pool_size_max=40,
    )


class FixedClock:
    """A clock the tests can set; the service reads it through ctx.clock."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="session")
def clock() -> FixedClock:
    return FixedClock()


@asynccontextmanager
async def running(application: Litestar) -> AsyncIterator[Litestar]:
    """Run an app's lifespan on the current event loop for the duration of the block."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        # the lifespan is entered and left in one task (anyio's cancel scopes require it)
        async with application.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(run())
    await asyncio.wait([task, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # startup failed: raise its error here
    try:
        yield application
    finally:
        stop.set()
        await task


def client_for(application: Litestar) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://kontor.test")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def serving(application: Any, port: int) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1:`port`, on the current event loop."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(application, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Simulator:
    sim: Any
    url: str
    http: httpx.AsyncClient
    provider_key_id: str = ""  # Kontor's solution-provider key at the simulator (delegated access)
    provider_key_file: Path | None = None

    async def control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.http.request(method, f"{self.url}/sim/{path}", **kwargs)
        response.raise_for_status()
        return response


@pytest.fixture(scope="session")
async def simulator(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Simulator]:
    """The Amazon Pay (v2) simulator over real HTTP, with Kontor's provider key registered at it."""
    from payments.amazon.simulator import AmazonPaySimulator

    sim = AmazonPaySimulator()
    provider_key_id, provider_pem = sim.register_provider()
    key_file = tmp_path_factory.mktemp("provider") / "provider-key.pem"
    key_file.write_text(provider_pem or "")
    async with serving(sim.app(), free_port()) as url, httpx.AsyncClient() as http:
        yield Simulator(sim=sim, url=url, http=http, provider_key_id=provider_key_id, provider_key_file=key_file)
    await sim.aclose()


def plugins_for_tests(simulator: Simulator, sns_root: Path, *, webhook_allow_http: bool = True) -> list[Any]:
    from desk.plugin import DeskPlugin
    from dunning.plugin import DunningPlugin
    from payments.config import PaymentsSettings
    from payments.plugin import PaymentsPlugin

    return [
        PaymentsPlugin(
            PaymentsSettings(
                amazon_pay_endpoint=simulator.url,
                amazon_pay_attempts_max=2,
                amazon_pay_provider_public_key_id=simulator.provider_key_id,
                amazon_pay_provider_private_key_file=str(simulator.provider_key_file),
                amazon_pay_sns_ca_file=str(sns_root),
                amazon_pay_sns_cert_base=simulator.url,
                refund_retry_interval_s=3600,
                webhook_allow_http=webhook_allow_http,  # production: False (no plain http, no private addresses)
                webhook_attempts_max=3,
            )
        ),
        DunningPlugin(),
        DeskPlugin(),
    ]


@pytest.fixture(scope="session")
async def app(
    settings: Settings, clock: FixedClock, simulator: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Litestar]:
    """The service on the test session's event loop (requests really run concurrently), also served over HTTP
    so that the Amazon Pay simulator can deliver IPNs to it; the simulator's test root signs those."""
    sns_root = tmp_path_factory.mktemp("sns") / "root.pem"
    sns_root.write_bytes(simulator.sim.identity.root_pem())
    application = create_app(settings, clock=clock, plugins=plugins_for_tests(simulator, sns_root))
    async with running(application), serving(application, free_port()) as url:
        simulator.sim.ipn_url = f"{url}/v1/amazon-pay/ipn"
        application.state.test_base_url = url
        yield application
        simulator.sim.ipn_url = None


@pytest.fixture(scope="session")
def app_url(app: Litestar) -> str:
    """Where the test app listens over HTTP (for clients in other threads or processes)."""
    url: str = app.state.test_base_url
    return url


@pytest.fixture(scope="session")
async def app_client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as client:
        yield client


@pytest.fixture
def ctx(app: Litestar) -> Kontor:
    """The service's own context: its pool, caches and clock."""
    kontor: Kontor = app.state.kontor
    return kontor


@dataclass
class Tenant:
    """A merchant created for one test, with helpers that call the API with its keys."""

    client: httpx.AsyncClient
    merchant_id: int
    admin_key: str
    business: int = 1001
    poster_key: str = ""
    accountant_key: str = ""

    def headers(self, key: str | None = None, idem: str | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {key or self.admin_key}"}
        if idem is not None:
            h["Idempotency-Key"] = idem
        return h

    def url(self, path: str) -> str:
        return f"/v1/businesses/{self.business}{path}"

    async def get(self, path: str, key: str | None = None, **params: Any) -> httpx.Response:
        return await self.client.get(self.url(path), headers=self.headers(key), params=params)

    async def post(
        self, path: str, body: Any = None, key: str | None = None, idem: str | None = "auto", **kwargs: Any
    ) -> httpx.Response:
        key_value = str(uuid.uuid4()) if idem == "auto" else idem
        return await self.client.post(self.url(path), json=body, headers=self.headers(key, key_value), **kwargs)

    async def post_entry(
        self,
        lines: list[dict[str, Any]],
        *,
        date: str = "2026-11-20",
        idem: str | None = "auto",
        key: str | None = None,
        **fields: Any,
    ) -> httpx.Response:
        body = {
            "effective_date": date,
            "description": fields.pop("description", "test entry"),
            "lines": lines,
            **fields,
        }
        return await self.post("/entries", body, key=key or self.poster_key, idem=idem)

    async def sale(self, customer: str, gross: str, net: str, vat: str, **kw: Any) -> dict[str, Any]:
        """Invoice: Dr AR (customer) gross / Cr revenue 19 % net / Cr VAT 19 % tax."""
        r = await self.post_entry(
            [
                {"account": "1400", "customer": customer, "debit": gross},
                {"account": "8400", "credit": net},
                {"account": "1776", "credit": vat},
            ],
            **kw,
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body


async def make_tenant(
    client: httpx.AsyncClient, *, businesses: list[dict[str, Any]] | None = None, name: str = "Test Shop GmbH"
) -> Tenant:
    body = {"name": name, "businesses": businesses or [{"code": 1001, "country": "DE", "currency": "EUR"}]}
    r = await client.post("/v1/merchants", json=body, headers={"Authorization": f"Bearer {OPERATOR_KEY}"})
    assert r.status_code == 201, r.text
    created = r.json()
    tenant = Tenant(
        client=client,
        merchant_id=created["merchant_id"],
        admin_key=created["api_key"]["key"],
        business=created["businesses"][0]["code"],
    )
    for role in ("poster", "accountant"):
        k = await client.post("/v1/api-keys", json={"name": role, "role": role}, headers=tenant.headers())
        assert k.status_code == 201, k.text
        tenant = replace(tenant, **{f"{role}_key": k.json()["key"]})
    return tenant


@pytest.fixture
async def tenant(app_client: httpx.AsyncClient) -> Tenant:
    return await make_tenant(app_client)

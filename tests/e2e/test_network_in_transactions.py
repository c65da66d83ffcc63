"""No network call inside a database transaction: the watch every test runs under (tests/network_guard.py,
the autouse fixture `no_network_in_transactions` in tests/conftest.py) sees a call made inside one, also from a
task spawned inside one, and stays quiet for the same call made after the commit."""

from __future__ import annotations

import asyncio
from typing import Any

from ledger.context import Kontor
from payments.runtime import Payments
from tests import network_guard
from tests.conftest import Simulator, Tenant
from tests.e2e.amazon import Shop, make_shop


def _runtime(tenant: Tenant) -> Payments:
    app: Any = tenant.client._transport.app  # type: ignore[attr-defined]
    runtime: Payments = app.state.payments
    return runtime


async def test_a_call_inside_a_transaction_is_seen_and_one_after_commit_is_not(
    tenant: Tenant, simulator: Simulator, ctx: Kontor
) -> None:
    shop: Shop = await make_shop(tenant, simulator)
    rt, creds = _runtime(tenant), shop.credentials()
    session = await shop.checkout("10.00")
    network_guard.drain()

    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute("SELECT 1")
            await rt.gateway.get_checkout_session(creds, session)
        inside = network_guard.drain()
        await rt.gateway.get_checkout_session(creds, session)  # the same connection, committed
        after = network_guard.drain()
        async with conn.transaction():
            await asyncio.get_running_loop().create_task(rt.gateway.get_checkout_session(creds, session))
        spawned = network_guard.drain()

    assert [(v.method, v.url.split("/v2/")[-1]) for v in inside] == [("GET", f"checkoutSessions/{session}")]
    assert "test_network_in_transactions.py" in inside[0].opened_at
    assert after == []
    # seen twice: the spawned task inherits the open transaction, and its parent holds it idle while it waits
    assert len(spawned) == 2


async def test_a_session_of_another_task_idle_in_transaction_during_a_call_is_seen(
    tenant: Tenant, simulator: Simulator, ctx: Kontor
) -> None:
    """The cross-task watch: one task holds a transaction open, idle, waiting for something else than the database,
    while another calls Amazon (what pg_stat_activity shows as a session idle in transaction during the call)."""
    shop: Shop = await make_shop(tenant, simulator)
    rt, creds = _runtime(tenant), shop.credentials()
    session = await shop.checkout("10.00")
    network_guard.drain()
    holding, done = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with ctx.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 AS held_open")
            holding.set()
            await done.wait()

    holder = asyncio.get_running_loop().create_task(hold())
    await holding.wait()
    await rt.gateway.get_checkout_session(creds, session)  # this task holds no transaction
    done.set()
    await holder
    seen = network_guard.drain()
    await rt.gateway.get_checkout_session(creds, session)  # nothing held open now
    after = network_guard.drain()

    assert len(seen) == 1
    assert "another task; it waits, idle, at" in seen[0].opened_at
    assert "done.wait()" in seen[0].opened_at
    assert after == []

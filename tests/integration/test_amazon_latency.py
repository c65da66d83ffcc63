"""Median and p95 latency of every client call against the simulator served over HTTP (printed, not asserted).

Wall-clock numbers depend on the machine (two shared cores here); the test only fails if a call fails.
"""

from __future__ import annotations

import secrets
import statistics
import time
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

import pytest

from payments.amazon.client import Amount, Credentials, Evidence
from tests.integration.amazon_v2 import Amazon, key_from_pem, served_simulator

ROUNDS = 30
SETTLEMENT = "_GET_FLAT_FILE_OFFAMAZONPAYMENTS_SETTLEMENT_DATA_"


def key() -> str:
    return "l-" + secrets.token_hex(8)


async def timed(samples: dict[str, list[float]], name: str, call: Awaitable[Any]) -> Any:
    started = time.perf_counter()
    result = await call
    samples.setdefault(name, []).append((time.perf_counter() - started) * 1000)
    return result


async def one_round(
    amazon: Amazon, creds: Credentials, delegated: Credentials, samples: dict[str, list[float]]
) -> None:
    c, t = amazon.client, lambda name, call: timed(samples, name, call)
    session_id = await amazon.session(creds, "50.00", payment_intent="Confirm")
    await t("get_checkout_session", c.get_checkout_session(creds, session_id))
    done = await t(
        "complete_checkout_session",
        c.complete_checkout_session(creds, session_id, Amount(5000, "EUR"), idempotency_key=key()),
    )
    permission_id = done.charge_permission_id
    await t("get_charge_permission", c.get_charge_permission(creds, permission_id))
    charge = await t(
        "create_charge",
        c.create_charge(
            creds,
            permission_id,
            Amount(2000, "EUR"),
            capture_now=False,
            can_handle_pending_authorization=False,
            idempotency_key=key(),
        ),
    )
    await t("get_charge", c.get_charge(creds, charge.charge_id))
    await t("capture_charge", c.capture_charge(creds, charge.charge_id, Amount(2000, "EUR"), idempotency_key=key()))
    other = await c.create_charge(
        creds,
        permission_id,
        Amount(1000, "EUR"),
        capture_now=False,
        can_handle_pending_authorization=False,
        idempotency_key=key(),
    )
    await t("cancel_charge", c.cancel_charge(creds, other.charge_id, "latency"))
    refund = await t(
        "create_refund", c.create_refund(creds, charge.charge_id, Amount(500, "EUR"), idempotency_key=key())
    )
    await t("get_refund", c.get_refund(creds, refund.refund_id))
    filed = await amazon.control(
        "POST", "disputes", json={"merchant_id": creds.merchant_id, "charge_id": charge.charge_id, "amount": "5.00"}
    )
    await t("get_dispute", c.get_dispute(creds, filed["disputeId"]))
    file_id = await t("upload_file", c.upload_file(creds, b"%PDF-1.4 " * 100, file_type="pdf", idempotency_key=key()))
    await t(
        "contest_dispute",
        c.contest_dispute(creds, filed["disputeId"], [Evidence("Receipt", file_id=file_id)], idempotency_key=key()),
    )
    await t("close_charge_permission", c.close_charge_permission(creds, permission_id, "latency"))
    settled = await amazon.control("POST", "settlements", json={"merchant_id": creds.merchant_id})
    await t("list_reports", c.list_reports(creds, report_types=[SETTLEMENT]))
    await t("get_report", c.get_report(creds, settled["report_id"]))
    url = await t("get_report_document_url", c.get_report_document_url(creds, settled["report_document_id"]))
    await t("download_report", c.download_report(url, bytes_max=1 << 20))
    now = amazon.sim.now()
    await t(
        "list_disbursements", c.list_disbursements(creds, start=now - timedelta(days=1), end=now + timedelta(days=1))
    )
    await t("get_charge (delegated)", c.get_charge(delegated, charge.charge_id))


@pytest.mark.timeout(300)
async def test_client_call_latency(capsys: pytest.CaptureFixture[str]) -> None:
    samples: dict[str, list[float]] = {}
    async with served_simulator() as amazon:
        creds = await amazon.merchant()
        provider = await amazon.control("POST", "providers", json={})
        provider_key = key_from_pem(provider["private_key_pem"])
        kontor = Credentials(creds.merchant_id, provider["public_key_id"], provider_key, "eu", True)
        for _ in range(ROUNDS):
            grant = {"merchant_id": creds.merchant_id, "public_key_id": provider["public_key_id"]}
            mws = (await amazon.control("POST", "providers/grants", json=grant))["mws_auth_token"]
            token = await timed(
                samples, "exchange_auth_token", amazon.client.exchange_auth_token(kontor, creds.merchant_id, mws)
            )
            delegated = Credentials(creds.merchant_id, provider["public_key_id"], provider_key, "eu", True, token)
            await one_round(amazon, creds, delegated, samples)
    lines = [f"{'call':<28} {'median ms':>10} {'p95 ms':>8}  (n={ROUNDS}, simulator over HTTP on 127.0.0.1)"]
    for name, values in sorted(samples.items()):
        p95 = statistics.quantiles(values, n=20)[18]
        lines.append(f"{name:<28} {statistics.median(values):>10.1f} {p95:>8.1f}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert len(samples) == 20

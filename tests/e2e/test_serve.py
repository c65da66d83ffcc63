"""`kontor serve` and the CLI as real processes on the embedded PostgreSQL.

Covers what only a real process shows: the README's start command works, SIGTERM stops the service
and its embedded PostgreSQL, a run killed with SIGKILL leaves an orphaned server that the next start
takes over (and then stops), several workers share one database, and the CLI onboards a merchant and
verifies the journal while the service runs.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import (
    KONTOR,
    create_merchant,
    env_without_database,
    free_port,
    kontor,
    post_sale,
    postmaster,
    serve,
    stop,
)

pytestmark = pytest.mark.timeout(180)


def test_serve_onboard_post_verify_and_stop_cleanly(data_dir: Path) -> None:
    key = create_merchant(data_dir)
    assert key.startswith("kontor_")
    port = free_port()
    proc = serve(data_dir, port)
    r = post_sale(port, key)
    assert r.status_code == 201, r.text
    assert r.headers["x-request-id"]
    time.sleep(0.6)  # let the scheduler link the entry into the chain
    verified = kontor("verify", "--data-dir", str(data_dir), "--no-link-first", env=env_without_database())
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "business 1001: OK (1 entries chained, 0 not yet)" in verified.stdout
    pm = postmaster(data_dir / "pgdata")
    assert pm is not None
    assert stop(proc) == 0
    pm.wait(15)
    assert not pm.is_running(), "SIGTERM must stop the embedded PostgreSQL"


def test_killed_server_leaves_an_orphan_that_the_next_start_takes_over(data_dir: Path) -> None:
    key = create_merchant(data_dir)
    port = free_port()
    first = serve(data_dir, port)
    assert post_sale(port, key).status_code == 201
    stop(first, signal.SIGKILL)
    orphan = postmaster(data_dir / "pgdata")
    assert orphan is not None, "after SIGKILL the embedded server is orphaned"
    second = serve(data_dir, port)
    assert postmaster(data_dir / "pgdata") is not None
    entries = httpx.get(
        f"http://127.0.0.1:{port}/v1/businesses/1001/entries", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert len(entries.json()["items"]) == 1, "acknowledged data survived the kill"
    assert stop(second) == 0
    orphan.wait(15)
    assert not orphan.is_running(), "the orphan was taken over and stopped"


def test_several_workers_share_one_database(data_dir: Path) -> None:
    key = create_merchant(data_dir)
    port = free_port()
    proc = serve(data_dir, port, "--workers", "2")
    statuses = [post_sale(port, key).status_code for _ in range(20)]
    assert statuses == [201] * 20
    assert (data_dir / "secret.key").stat().st_mode & 0o777 == 0o600  # created by the first command, owner only
    log = data_dir.with_suffix(f".{port}.log").read_text()
    assert "secret.key" not in log.replace(str(data_dir / "secret.key"), ""), "workers use --data-dir's key file"
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert "kontor_entries_posted_total 20.0" in metrics, "metrics aggregate across workers"
    pm = postmaster(data_dir / "pgdata")
    assert pm is not None
    assert stop(proc) == 0
    pm.wait(15)
    assert not pm.is_running()


def test_cli_reports_bad_input_clearly(data_dir: Path) -> None:
    env = env_without_database()
    bad = kontor("merchant", "create", "X", "--business", "1001-DE-EUR", "--data-dir", str(data_dir), env=env)
    assert bad.returncode == 2
    assert "use CODE:COUNTRY:CURRENCY" in bad.stderr
    unknown = kontor("merchant", "create", "X", "--business", "1001:DE:XAU", "--data-dir", str(data_dir), env=env)
    assert unknown.returncode == 1
    assert "XAU is not an ISO 4217 currency" in unknown.stderr


def test_develop_against_the_amazon_pay_simulator(data_dir: Path) -> None:
    """The README's development setup: `kontor simulate amazon-pay` and `kontor serve` configured as it says, a
    merchant connected with the keys the simulator generated, an order paid by a simulated buyer, its IPN verified,
    the settlement report imported."""
    sim_port, port = free_port(), free_port()
    state = data_dir.with_suffix(".sim")
    log = data_dir.with_suffix(".sim.log")
    with log.open("wb") as sink:
        ipn_url = f"http://127.0.0.1:{port}/v1/amazon-pay/ipn"
        sim = subprocess.Popen(
            [
                *KONTOR,
                "simulate",
                "amazon-pay",
                "--port",
                str(sim_port),
                "--state-dir",
                str(state),
                "--ipn-url",
                ipn_url,
            ],
            env=env_without_database(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    proc = None
    try:
        deadline = time.monotonic() + 30
        while "export KONTOR_AMAZON_PAY_PROVIDER_PRIVATE_KEY_FILE" not in log.read_text():
            assert sim.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        settings = dict(
            line.strip().removeprefix("export ").split("=", 1)
            for line in log.read_text().splitlines()
            if line.strip().startswith("export ")
        )
        key = create_merchant(data_dir)
        proc = serve(data_dir, port, env=settings)
        sim_url = f"http://127.0.0.1:{sim_port}/sim"
        account = httpx.post(f"{sim_url}/merchants", json={"region": "eu"}).json()
        base = f"http://127.0.0.1:{port}/v1/businesses/1001"
        auth = {"Authorization": f"Bearer {key}"}
        r = httpx.put(
            f"{base}/amazon-pay/settings",
            headers=auth,
            json={
                "amazon_merchant_id": account["merchant_id"],
                "public_key_id": account["public_key_id"],
                "private_key": account["private_key_pem"],
                "sandbox": True,
            },
            timeout=30,
        )
        assert r.status_code == 200, r.text
        session = httpx.post(
            f"{sim_url}/checkout-sessions",
            json={"merchant_id": account["merchant_id"], "amount": "119.00", "payment_intent": "AuthorizeWithCapture"},
        ).json()["checkoutSessionId"]
        order = {
            "order_reference": "dev-1",
            "order_date": "2026-11-20",
            "items": [
                {
                    "item_reference": 1,
                    "description": "Article",
                    "gross_unit_price": "119.00",
                    "vat_rate": "19",
                    "quantity": 1,
                    "position_type": "SALES_ARTICLE",
                }
            ],
            "payment_method": {"checkout_session_id": session},
            "bill_to": {"first_name": "Erika", "last_name": "Mustermann", "country_code": "DE"},
        }
        created = httpx.post(f"{base}/customers/C-1/orders", headers=auth, json=order, timeout=30)
        assert created.status_code == 201, created.text
        assert [c["state"] for c in created.json()["charges"]] == ["Captured"]
        httpx.post(f"{sim_url}/idle", timeout=30)
        sent = httpx.get(f"{sim_url}/ipn/sent").json()
        assert sent, "the simulator sent the charge's IPN"
        assert httpx.post(f"{sim_url}/ipn/replay", json={"index": 0}).json() == {"status": 200}  # verified
        report = httpx.get(f"{sim_url}/settlement-report", params={"merchant_id": account["merchant_id"]}).text
        settled = httpx.post(f"{base}/amazon-pay/settlements", headers=auth, content=report.encode(), timeout=30)
        assert settled.status_code == 201, settled.text
        assert settled.json()["outcomes"]["matched"] == 1
    finally:
        if proc is not None:
            assert stop(proc) == 0
        assert stop(sim) in (0, -signal.SIGTERM)

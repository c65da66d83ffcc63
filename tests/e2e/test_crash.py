"""R4: crashes under load. `kontor serve` (a real process on its embedded PostgreSQL) is killed with SIGKILL while
8 clients post entries, again and again; every few rounds PostgreSQL itself is killed hard (SIGKILL to the
postmaster and every backend: no shutdown checkpoint, crash recovery at the next start).

Passes when, after the last restart: every acknowledged entry is there with exactly the lines it was acknowledged
with; every request that got no answer, sent again with its Idempotency-Key, is booked exactly once (so nothing
was half-written and nothing twice); each account's balance equals the sum of its lines; the hash chain verifies.
The fast variant kills the service 3 times and PostgreSQL once; the slow one 20 and 5 times.
"""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.e2e.processes import (
    create_merchant,
    free_port,
    postmaster,
    serve,
    stop,
)

pytestmark = pytest.mark.timeout(900)
CLIENTS = 8
ACKNOWLEDGED_PER_ROUND = 12  # postings acknowledged in each round before its kill


def body(i: int) -> dict[str, Any]:
    cents = 100 + i % 9_900
    return {
        "effective_date": "2026-11-20",
        "description": f"crash test {i}",
        "reference": f"crash-{i}",
        "lines": [
            {"account": "1400", "customer": f"C-{i % 13}", "debit": f"{cents // 100}.{cents % 100:02d}"},
            {"account": "8400", "credit": f"{cents // 100}.{cents % 100:02d}"},
            {"account": "1200", "debit": "0.01"},
            {"account": "1590", "credit": "0.01"},
        ],
    }


@dataclass
class Load:
    """Clients posting numbered entries; what was acknowledged and what got no answer."""

    port: int
    key: str
    next_i: int = 0
    acknowledged: dict[int, dict[str, Any]] = field(default_factory=dict)  # request number -> the 201 body
    unanswered: set[int] = field(default_factory=set)
    keys: dict[int, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, i: int, http: httpx.Client | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": self.keys[i]}
        url = f"http://127.0.0.1:{self.port}/v1/businesses/1001/entries"
        return (http or httpx).post(url, json=body(i), headers=headers, timeout=10)

    def client(self, stop_at: threading.Event) -> None:
        with httpx.Client() as http:  # keep-alive, as a payment service would
            while not stop_at.is_set():
                with self.lock:
                    i, self.next_i = self.next_i, self.next_i + 1
                    self.keys[i] = str(uuid.uuid4())
                try:
                    r = self.send(i, http)
                except httpx.HTTPError:
                    self.unanswered.add(i)  # killed mid-request: the outcome is unknown to the client
                    return  # the service is gone; this client waits for the next round
                if r.status_code != 201:
                    assert r.status_code == 503, r.text  # the database went away: a clean refusal
                    self.unanswered.add(i)
                    return
                self.acknowledged[i] = r.json()

    def run_until_killed(self, kill: Any, seconds: float) -> None:
        stop_at = threading.Event()
        with ThreadPoolExecutor(CLIENTS) as pool:
            clients = [pool.submit(self.client, stop_at) for _ in range(CLIENTS)]
            # the load is under way before the kill, however slow a busy machine makes the first requests
            wanted, give_up = len(self.acknowledged) + ACKNOWLEDGED_PER_ROUND, time.monotonic() + 120
            while len(self.acknowledged) < wanted and time.monotonic() < give_up:
                time.sleep(0.02)
            time.sleep(seconds)
            kill()
            time.sleep(0.3)  # requests in flight fail now
            stop_at.set()
            for c in clients:
                c.result()  # a client's failed assertion fails the test


def kill_postgres_hard(pgdata: Path) -> None:
    pm = postmaster(pgdata)
    assert pm is not None
    family = [pm, *pm.children(recursive=True)]
    for proc in family:
        proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(family, timeout=15)


def crash_rounds(data_dir: Path, service_kills: int, postgres_kills: int) -> None:
    key = create_merchant(data_dir)
    port = free_port()
    load = Load(port, key)
    rng = random.Random(4)
    pg_rounds = set(rng.sample(range(service_kills), postgres_kills))
    for n in range(service_kills):
        proc = serve(data_dir, port)
        if n in pg_rounds:  # the database dies under load; the service answers 503 until it is killed too
            load.run_until_killed(lambda: kill_postgres_hard(data_dir / "pgdata"), rng.uniform(0.3, 1.0))
            proc.send_signal(signal.SIGKILL)
        else:
            load.run_until_killed(lambda proc=proc: proc.send_signal(signal.SIGKILL), rng.uniform(0.3, 1.0))
        proc.wait(10)
    print(f"R4: {service_kills} service kills, {postgres_kills} PostgreSQL kills; {len(load.acknowledged)} postings "
          f"acknowledged, {len(load.unanswered)} unanswered (retried with their key)")  # fmt: skip
    assert len(load.acknowledged) >= ACKNOWLEDGED_PER_ROUND * service_kills, "the load hardly ran: it proved little"
    assert load.unanswered, "no request was caught in flight: the kills missed the load"
    proc = serve(data_dir, port)
    try:
        check_books(load, port, key)
    finally:
        assert stop(proc) == 0


def check_books(load: Load, port: int, key: str) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    base = f"http://127.0.0.1:{port}/v1/businesses/1001"
    for i in sorted(load.unanswered):  # outcome unknown: the client retries with the same key
        r = load.send(i)
        assert r.status_code == 201, r.text
        load.acknowledged[i] = r.json()
    assert len(load.acknowledged) == load.next_i
    stored: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        page = httpx.get(f"{base}/entries", params={"limit": 500, **({"cursor": cursor} if cursor else {})},
                         headers=auth, timeout=30).json()  # fmt: skip
        stored.update({e["id"]: e for e in page["items"]})
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert len(stored) == load.next_i, "an entry was lost or booked twice"
    by_reference = {e["reference"]: e for e in stored.values()}
    for i, acknowledged in load.acknowledged.items():
        entry = by_reference[f"crash-{i}"]
        assert entry["id"] == acknowledged["id"]
        assert entry["lines"] == acknowledged["lines"], "an entry differs from what was acknowledged"
        assert len(entry["lines"]) == 4
    expected = sum(100 + i % 9_900 for i in range(load.next_i))
    ar = httpx.get(f"{base}/accounts/1400/balance", headers=auth, timeout=10).json()["balances"][0]
    assert ar["balance"] == f"{expected // 100}.{expected % 100:02d}"
    deadline = time.monotonic() + 60
    while True:  # the chain is linked in the background; wait until every entry is in it
        verified = httpx.get(f"{base}/journal/verify", headers=auth, timeout=60).json()
        if verified["unchained"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert verified["ok"] is True, verified
    assert verified["unchained"] == 0, verified
    assert verified["balances_match_lines"] is True, verified
    assert verified["entries"] == load.next_i


def test_killed_service_and_postgres_lose_no_acknowledged_entry(data_dir: Path) -> None:
    crash_rounds(data_dir, service_kills=3, postgres_kills=1)


@pytest.mark.slow
def test_twenty_service_kills_and_five_postgres_kills(data_dir: Path) -> None:
    crash_rounds(data_dir, service_kills=20, postgres_kills=5)

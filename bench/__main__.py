"""`python -m bench`: the performance figures of the README's Performance table (P1-P7), each beside its raw-SQL baseline.

Starts everything itself: PostgreSQL (embedded, or a fresh database on --url), the service as a real
`kontor serve` process with --workers workers, and the load generator as a separate process; seeds the
P4 journal through the bulk endpoint (that run is P3); prints one table and optionally writes JSON.
The machine is shared and noisy, so every throughput is reported beside a baseline measured in the
same run, against the same database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import psutil

from bench import dunning, settlement
from bench.report import Coalescing, Row, p4_queries, print_table, rows_for
from bench.workloads import BASELINE_DDL, baseline_accounts
from ledger import tenancy
from ledger.config import Settings
from ledger.context import Kontor
from ledger.db import apply_schema, create_pool
from ledger.embedded import start_embedded
from ledger.schemas import BusinessCreate
from ledger.secrets import SecretBox, generate_key

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--url", help="PostgreSQL server URL; a fresh database is created there (default: embedded)")
    p.add_argument("--workers", type=int, default=2, help="service worker processes")
    p.add_argument("--merchants", type=int, default=100, help="merchants for P1")
    p.add_argument("--p4-entries", type=int, default=1_000_000, help="entries in the P4 journal (seeded by P3)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured per throughput run")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before measuring")
    p.add_argument("--reads", type=int, default=400, help="requests per P4 read")
    p.add_argument("--p5-rows", type=int, default=100_000, help="capture rows in the P5 settlement report")
    p.add_argument("--p6-customers", type=int, default=100_000, help="overdue customers in the P6 dunning run")
    p.add_argument("--log-level", default="INFO", help="service log level (INFO writes an access line per request)")
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness in seconds")
    args = p.parse_args(argv)
    if args.quick:
        args.merchants, args.p4_entries, args.duration, args.warmup, args.reads = 5, 2_000, 1.0, 0.3, 20
        args.p5_rows, args.p6_customers = 500, 300
    return args


@contextlib.contextmanager
def database(url: str | None) -> Iterator[str]:
    if url is None:
        with tempfile.TemporaryDirectory(prefix="kontor-bench-", dir="/tmp") as tmp:
            embedded = start_embedded(Path(tmp), delete_on_stop=True)
            try:
                yield embedded.uri
            finally:
                embedded.stop()
        return
    name = f"kontor_bench_{secrets.token_hex(3)}"
    asyncio.run(_admin(url, f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    finally:
        asyncio.run(_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def prepare(dsn: str, merchants: int) -> dict[str, Any]:
    """Schema, merchants with poster keys, and the baseline's tables and balance rows."""
    pool = await create_pool(dsn, size_max=4)
    try:
        async with pool.acquire() as conn:
            await apply_schema(conn)
            await conn.execute(BASELINE_DDL)
            await conn.execute(
                "INSERT INTO bench_balances (account) SELECT unnest($1::bigint[])",
                baseline_accounts(range(merchants + 3)),
            )
        settings = Settings(database_url=dsn, secret_key=generate_key())  # seeding seals nothing
        ctx = Kontor(pool=pool, reports_pool=pool, settings=settings, secrets=SecretBox.from_settings(settings))
        spec = [BusinessCreate(code=1001, country="DE", currency="EUR")]

        async def merchant(name: str) -> dict[str, Any]:
            created = await tenancy.create_merchant(ctx, name, spec)
            key = await tenancy.issue_key(pool, created.merchant_id, "bench", "poster")
            return {"merchant_id": created.merchant_id, "key": key.key, "path": "/v1/businesses/1001/entries"}

        return {
            "p1": [await merchant(f"P1 shop {i}") for i in range(merchants)],
            "p2": await merchant("P2 hot shop"),
            "p4": await merchant("P4 big shop"),
        }
    finally:
        await pool.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def service(
    dsn: str, workers: int, log_level: str, log_path: Path, pool_size: int = 8
) -> Iterator[tuple[int, psutil.Process]]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KONTOR_")},
        "KONTOR_DATABASE_URL": dsn,
        "KONTOR_SECRET_KEY": generate_key(),  # a throwaway database: no key file in the user's data dir
        "KONTOR_RATE_LIMIT_PER_SECOND": "1000000",
        "KONTOR_LOG_LEVEL": log_level,
        "KONTOR_DB_POOL_SIZE_MAX": "20",
        # P6 runs dunning over HTTP: the service's own daily run (06:00 UTC, resumed every 5 minutes when missed)
        # would take the seeded business code first and the runs measured would be refused as concurrent
        "KONTOR_DUNNING_CRON": "0 6 1 1 *",
        "KONTOR_DUNNING_RESUME_INTERVAL_S": "86400",
    }
    with log_path.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"service did not start; see {log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        yield port, psutil.Process(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def coalescing(port: int) -> Coalescing:
    """The service's coalescing histograms so far (all workers), from /metrics."""
    return Coalescing.parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)


def loadgen(job: dict[str, Any]) -> Any:
    """Run one job in the separate load-generator process and return its JSON result."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.loadgen"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"load generator failed:\n{done.stderr}")
    return json.loads(done.stdout)


class RssSampler:
    """Samples the RSS of every process of the service (master and workers) while a workload runs."""

    def __init__(self, root: psutil.Process) -> None:
        self.root, self.max_process_mb, self.max_total_mb = root, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            with contextlib.suppress(psutil.Error):
                sizes = [p.memory_info().rss / 2**20 for p in [self.root, *self.root.children(recursive=True)]]
                self.max_process_mb = max(self.max_process_mb, *sizes)
                self.max_total_mb = max(self.max_total_mb, sum(sizes))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def days_of(year: int) -> list[str]:
    first = date(year, 1, 1)
    return [(first + timedelta(days=i)).isoformat() for i in range(365)]


async def settle(dsn: str, timeout_s: float = 900) -> None:
    """Bring the seeded journal to the steady state the service's jobs keep it in before reads are
    measured: every entry linked into the chain (the service links within seconds), the balance slots of
    past days folded (its compaction job runs every 10 minutes), statistics and visibility map current."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            linked = await conn.fetchval("SELECT COALESCE(sum(seq), 0) FROM chain_heads")
            if linked >= await conn.fetchval("SELECT count(*) FROM entries"):
                break
            await asyncio.sleep(1)
        while await conn.fetchval("SELECT kontor_compact_balance_slots(current_date - 1, 50000)"):
            pass
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def run(args: argparse.Namespace) -> tuple[list[Row], dict[str, Any]]:
    results: dict[str, Any] = {"config": {k: str(v) for k, v in vars(args).items()}}
    with database(args.url) as dsn:
        tenants = asyncio.run(prepare(dsn, args.merchants))
        log_path = Path(tempfile.gettempdir()) / "kontor-bench-service.log"
        with service(dsn, args.workers, args.log_level, log_path) as (port, proc):
            window = {"warmup_s": args.warmup, "duration_s": args.duration}
            http = {"host": "127.0.0.1", "port": port}
            p1_ids = [t["merchant_id"] for t in tenants["p1"]]
            results["P1_baseline"] = loadgen(
                {"kind": "sql_post", "dsn": dsn, "merchants": p1_ids, "shape": "P1", "concurrency": 16, **window}
            )
            before = coalescing(port)
            with RssSampler(proc) as rss:
                results["P1"] = loadgen(
                    {"kind": "http_post", **http, "targets": tenants["p1"], "shape": "P1", "concurrency": 32, **window}
                )
            after_p1 = coalescing(port)
            results["P1_coalescing"] = after_p1.minus(before).summary()
            results["P7"] = {"max_process_mb": round(rss.max_process_mb, 1), "max_total_mb": round(rss.max_total_mb, 1)}
            hot = tenants["p2"]
            results["P2_baseline"] = loadgen(
                {
                    "kind": "sql_post",
                    "dsn": dsn,
                    "merchants": [hot["merchant_id"]],
                    "shape": "P2",
                    "concurrency": 16,
                    **window,
                }
            )
            results["P2"] = loadgen(
                {"kind": "http_post", **http, "targets": [hot], "shape": "P2", "concurrency": 32, **window}
            )
            results["P2_coalescing"] = coalescing(port).minus(after_p1).summary()
            big = tenants["p4"]
            batch = {"batch_size": 1000, "days": days_of(2025), "shape": "P1"}
            results["P3"] = loadgen(
                {
                    "kind": "http_batch",
                    **http,
                    "path": big["path"] + "/batch",
                    "key": big["key"],
                    "batches": max(1, args.p4_entries // 1000),
                    "concurrency": 4,
                    **batch,
                }
            )
            results["P3_baseline"] = loadgen(
                {
                    "kind": "sql_batch",
                    "dsn": dsn,
                    "merchant": args.merchants + 2,
                    "batches": max(2, min(50, args.p4_entries // 20_000)),
                    "concurrency": 4,
                    **batch,
                }
            )
            asyncio.run(settle(dsn))
            reads_http, reads_sql = asyncio.run(p4_reads(dsn, big))
            results["P4"] = loadgen(
                {"kind": "http_get", **http, "key": big["key"], "reads": reads_http, "count": args.reads}
            )
            results["P4_baseline"] = loadgen({"kind": "sql_get", "dsn": dsn, "reads": reads_sql, "count": args.reads})
            with tempfile.TemporaryDirectory() as work:
                seeded = asyncio.run(settlement.seed(dsn, args.p5_rows, Path(work)))
                results["P5_baseline"] = asyncio.run(settlement.baseline(dsn, seeded))
                results["P5"] = settlement.upload(port, seeded) | {"rows": args.p5_rows}
            debtors = asyncio.run(dunning.seed(dsn, args.p6_customers))
            results["P6_baseline"] = asyncio.run(dunning.baseline(dsn, debtors))
            results["P6_reminders"] = dunning.run(port, debtors, 41) | {"customers": args.p6_customers}
            results["P6"] = dunning.run(port, debtors, 70) | {"customers": args.p6_customers}
    rows = rows_for(results)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "table": [r.as_dict() for r in rows]}, indent=2))
    return rows, results


async def p4_reads(dsn: str, big: dict[str, Any]) -> tuple[dict[str, list[str]], dict[str, list[Any]]]:
    """The four P4 reads, over HTTP and as the same SQL sent directly (the baseline)."""
    conn = await asyncpg.connect(dsn)
    try:
        accounts = {
            r["number"]: r["account_id"]
            for r in await conn.fetch(
                "SELECT number, account_id FROM accounts WHERE merchant_id = $1", big["merchant_id"]
            )
        }
    finally:
        await conn.close()
    return p4_queries(big["merchant_id"], accounts, days_of(2025))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows, results = run(args)
    print_table(rows)
    for name in ("P1", "P2"):
        stats = results[f"{name}_coalescing"]
        print(
            f"{name} coalescing: {stats['postings']:,} postings in {stats['commits']:,} commits, mean wait in the "
            f"queue {stats['mean_wait_ms']} ms; commits by postings carried: {stats['commits_by_batch_size']}"
        )
    if any(not r.passed for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()

"""The load generator: a separate process that drives the service over HTTP, or the baseline over asyncpg.

Run as `python -m bench.loadgen` with a JSON job on stdin; prints one JSON result on stdout. It speaks
HTTP/1.1 over raw asyncio streams with keep-alive (a full client library would spend much of the two
shared cores on itself), sends every posting with a fresh Idempotency-Key, and measures latency per
request after a warm-up.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import uvloop

from bench.workloads import (
    BASELINE_BATCH_SQL,
    BASELINE_POST_SQL,
    P1_SHAPE,
    P2_SHAPE,
    baseline_args,
    batch_body,
    entry_body,
)

SHAPES = {"P1": P1_SHAPE, "P2": P2_SHAPE}


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; responses must carry Content-Length (Litestar's do)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection(host, port, limit=2**24)
        return cls(reader, writer)

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {len(body)}\r\n"
        if body:
            head += "Content-Type: application/json\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        self.writer.write(head.encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next(int(v) for k, _, v in (ln.partition(":") for ln in lines[1:]) if k.lower() == "content-length")
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


@dataclass
class Samples:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    started: float = 0.0
    ended: float = 0.0

    def summary(self, unit_per_request: int = 1) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        n = len(ordered)
        seconds = max(self.ended - self.started, 1e-9)
        return {
            "requests": n,
            "seconds": round(seconds, 2),
            "rate": round(n * unit_per_request / seconds, 1),
            "p50_ms": round(ordered[n // 2], 2) if n else None,
            "p99_ms": round(ordered[min(n - 1, int(n * 0.99))], 2) if n else None,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


async def _timed_loop(samples: Samples, warmup_s: float, duration_s: float, work: Any) -> None:
    """Call `work()` until the window closes; record only what starts after the warm-up."""
    begin = time.perf_counter()
    samples.started = begin + warmup_s
    samples.ended = samples.started + duration_s
    while (now := time.perf_counter()) < samples.ended:
        status = await work()
        done = time.perf_counter()
        if now >= samples.started:
            samples.latencies_ms.append((done - now) * 1000)
            samples.statuses[status] += 1


async def http_post(job: dict[str, Any]) -> dict[str, Any]:
    shape, targets = SHAPES[job["shape"]], job["targets"]
    samples = Samples()
    counter = iter(range(10**9))

    async def client(i: int) -> None:
        rng = random.Random(job.get("seed", 0) * 1000 + i)
        conn = await HttpConnection.open(job["host"], job["port"])

        async def work() -> int:
            n = next(counter)
            target = targets[n % len(targets)]
            body = json.dumps(entry_body(shape, rng, n), separators=(",", ":")).encode()
            headers = {"Authorization": f"Bearer {target['key']}", "Idempotency-Key": uuid.uuid4().hex}
            status, _ = await conn.request("POST", target["path"], headers, body)
            return status

        try:
            await _timed_loop(samples, job["warmup_s"], job["duration_s"], work)
        finally:
            conn.close()

    await asyncio.gather(*(client(i) for i in range(job["concurrency"])))
    return samples.summary()


async def sql_post(job: dict[str, Any]) -> dict[str, Any]:
    shape, merchants = SHAPES[job["shape"]], job["merchants"]
    samples = Samples()
    counter = iter(range(10**9))
    pool = await asyncpg.create_pool(
        job["dsn"],
        min_size=job["concurrency"],
        max_size=job["concurrency"],
        server_settings={"synchronous_commit": "on"},
    )
    assert pool is not None

    async def client(i: int) -> None:
        rng = random.Random(job.get("seed", 0) * 1000 + i)
        async with pool.acquire() as conn:
            statement = await conn.prepare(BASELINE_POST_SQL)

            async def work() -> int:
                n = next(counter)
                await statement.fetchrow(*baseline_args(merchants[n % len(merchants)], entry_body(shape, rng, n)))
                return 201

            await _timed_loop(samples, job["warmup_s"], job["duration_s"], work)

    try:
        await asyncio.gather(*(client(i) for i in range(job["concurrency"])))
    finally:
        await pool.close()
    return samples.summary()


async def http_batch(job: dict[str, Any]) -> dict[str, Any]:
    """Post `batches` batches of `batch_size` entries; the figure is lines per second over the whole run."""
    shape = SHAPES[job["shape"]]
    samples = Samples()
    queue = list(range(job["batches"]))
    lines = 4 * job["batch_size"]

    async def client(i: int) -> None:
        rng = random.Random(job.get("seed", 0) * 1000 + i)
        conn = await HttpConnection.open(job["host"], job["port"])
        headers = {"Authorization": f"Bearer {job['key']}"}
        try:
            while queue:
                b = queue.pop()
                body = batch_body(shape, rng, b * job["batch_size"], job["batch_size"], job["days"])
                start = time.perf_counter()
                status, _ = await conn.request(
                    "POST", job["path"], {**headers, "Idempotency-Key": uuid.uuid4().hex}, body
                )
                samples.latencies_ms.append((time.perf_counter() - start) * 1000)
                samples.statuses[status] += 1
        finally:
            conn.close()

    samples.started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(job["concurrency"])))
    samples.ended = time.perf_counter()
    return samples.summary(unit_per_request=lines)


async def sql_batch(job: dict[str, Any]) -> dict[str, Any]:
    shape = SHAPES[job["shape"]]
    samples = Samples()
    queue = list(range(job["batches"]))
    pool = await asyncpg.create_pool(job["dsn"], min_size=1, max_size=job["concurrency"])
    assert pool is not None

    async def client(i: int) -> None:
        rng = random.Random(job.get("seed", 0) * 1000 + i)
        while queue:
            b = queue.pop()
            entries = json.loads(batch_body(shape, rng, b * job["batch_size"], job["batch_size"], job["days"]))[
                "entries"
            ]
            args = [baseline_args(job["merchant"], e) for e in entries]
            params = (
                job["merchant"],
                [a[1] for a in args],
                [a[2] for a in args],
                [a[3] for a in args],
                [i + 1 for i, a in enumerate(args) for _ in a[4]],
                [n for a in args for n in a[4]],
                [x for a in args for x in a[5]],
                [x for a in args for x in a[6]],
                [x for a in args for x in a[7]],
                [x for a in args for x in a[8]],
            )
            start = time.perf_counter()
            await pool.fetchval(BASELINE_BATCH_SQL, *params)
            samples.latencies_ms.append((time.perf_counter() - start) * 1000)
            samples.statuses[201] += 1

    samples.started = time.perf_counter()
    try:
        await asyncio.gather(*(client(i) for i in range(job["concurrency"])))
    finally:
        await pool.close()
    samples.ended = time.perf_counter()
    return samples.summary(unit_per_request=4 * job["batch_size"])


async def http_get(job: dict[str, Any]) -> dict[str, Any]:
    """Latency of each named read, one request at a time (the P4 targets are latencies)."""
    conn = await HttpConnection.open(job["host"], job["port"])
    headers = {"Authorization": f"Bearer {job['key']}"}
    out: dict[str, Any] = {}
    try:
        for name, paths in job["reads"].items():
            samples = Samples(started=time.perf_counter())
            for i in range(job["count"]):
                start = time.perf_counter()
                status, _ = await conn.request("GET", paths[i % len(paths)], headers)
                samples.latencies_ms.append((time.perf_counter() - start) * 1000)
                samples.statuses[status] += 1
            samples.ended = time.perf_counter()
            out[name] = samples.summary()
    finally:
        conn.close()
    return out


async def sql_get(job: dict[str, Any]) -> dict[str, Any]:
    conn = await asyncpg.connect(job["dsn"])
    out: dict[str, Any] = {}
    try:
        for name, variants in job["reads"].items():
            samples = Samples(started=time.perf_counter())
            for i in range(job["count"]):
                sql, args = variants[i % len(variants)]
                start = time.perf_counter()
                await conn.fetch(sql, *args)
                samples.latencies_ms.append((time.perf_counter() - start) * 1000)
                samples.statuses[200] += 1
            samples.ended = time.perf_counter()
            out[name] = samples.summary()
    finally:
        await conn.close()
    return out


JOBS = {
    "http_post": http_post,
    "sql_post": sql_post,
    "http_batch": http_batch,
    "sql_batch": sql_batch,
    "http_get": http_get,
    "sql_get": sql_get,
}


def main() -> None:
    job = json.load(sys.stdin)
    result = uvloop.run(JOBS[job["kind"]](job))  # uvloop ships with uvicorn[standard]
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()

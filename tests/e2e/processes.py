"""Helpers for tests that run `kontor` as real processes on the embedded PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psutil

KONTOR = [sys.executable, "-m", "ledger.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def env_without_database(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONTOR_")}
    env.update(KONTOR_LOG_LEVEL="WARNING", KONTOR_CHAIN_INTERVAL_S="0.2", **extra)
    return env


def kontor(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KONTOR, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def postmaster(pgdata: Path) -> psutil.Process | None:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().split()[0])
    return psutil.Process(pid) if psutil.pid_exists(pid) else None


def wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not become ready")


def serve(data_dir: Path, port: int, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log = data_dir.with_suffix(f".{port}.log")
    with log.open("wb") as sink:  # a file, not a pipe: a full pipe would block the server
        proc = subprocess.Popen(
            [*KONTOR, "serve", "--data-dir", str(data_dir), "--port", str(port), *extra],
            env=env_without_database(**(env or {})),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(port, proc, log)
    except BaseException:
        proc.kill()  # never leave a half-started server behind for the next test
        proc.wait()
        raise
    return proc


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()


def create_merchant(data_dir: Path) -> str:
    result = kontor(
        "merchant",
        "create",
        "Serve Test GmbH",
        "--business",
        "1001:DE:EUR",
        "--data-dir",
        str(data_dir),
        env=env_without_database(),
    )
    assert result.returncode == 0, result.stderr
    assert "business 1001 DE/EUR chart skr03 VAT 19, 7 %" in result.stdout
    return result.stdout.strip().splitlines()[-1].strip()


def post_sale(port: int, key: str) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/v1/businesses/1001/entries",
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": str(uuid.uuid4())},
        json={
            "effective_date": "2026-11-20",
            "description": "sale",
            "lines": [
                {"account": "1400", "customer": "C-1", "debit": "119.00"},
                {"account": "8400", "credit": "100.00"},
                {"account": "1776", "credit": "19.00"},
            ],
        },
        timeout=10,
    )

"""Database errors that are not the client's fault answer 503 problem+json with Retry-After, never 500."""

from __future__ import annotations

import asyncpg
import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from ledger.http.problems import EXCEPTION_HANDLERS


@get("/slow")
async def slow() -> None:
    raise TimeoutError


@get("/cancelled")
async def cancelled() -> None:
    raise asyncpg.QueryCanceledError("canceling statement due to statement timeout")


@pytest.mark.parametrize("path", ["/slow", "/cancelled"])
def test_a_query_that_times_out_is_a_503_with_retry_after(path: str) -> None:
    with TestClient(Litestar([slow, cancelled], exception_handlers=EXCEPTION_HANDLERS, logging_config=None)) as client:
        r = client.get(path)
    assert (r.status_code, r.headers["retry-after"], r.headers["content-type"]) == (
        503, "5", "application/problem+json",
    )  # fmt: skip
    assert r.json()["code"] == "database_timeout"


@get("/broken")
async def broken() -> None:
    raise RuntimeError("a bug")


def test_an_unexpected_error_promises_a_safe_retry_only_to_a_request_with_an_idempotency_key() -> None:
    """QA: the 500 told every client to retry "with the same Idempotency-Key", also on routes that take none."""
    app = Litestar([broken, slow], exception_handlers=EXCEPTION_HANDLERS, logging_config=None)
    with TestClient(app) as client:
        keyless, keyed = client.get("/broken"), client.get("/broken", headers={"Idempotency-Key": "k-1"})
        timeout = client.get("/slow")
    assert (keyless.status_code, keyless.json()["code"]) == (500, "internal_error")
    assert "Idempotency-Key" not in keyless.json()["detail"]
    assert "Idempotency-Key" not in timeout.json()["detail"]
    assert "retried with the same Idempotency-Key" in keyed.json()["detail"]

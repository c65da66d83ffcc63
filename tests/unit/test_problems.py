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
